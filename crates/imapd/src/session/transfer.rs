//! Messages between mailboxes: COPY and UID COPY (COPYUID), MOVE and UID
//! MOVE (RFC 6851), all UIDPLUS (RFC 4315); and the UID sets and dates
//! that APPEND (`session::append`) shares.
//!
//! A destination that does not exist gets `NO [TRYCREATE]`. COPY skips
//! messages another session expunged meanwhile. MOVE is one store
//! transaction, so no other session ever sees a message in both mailboxes
//! or in neither; its own EXPUNGEs are part of its reply even when it uses
//! sequence numbers (RFC 6851 3.3).

use store::{StoreError, Uid};

use super::Session;
use crate::protocol::encode::{Code, Status};
use crate::protocol::{DateTime, MailboxName, SequenceSet, Tag};

/// The set of these UIDs (ascending) with runs written as ranges.
pub(super) fn uid_set(uids: &[Uid]) -> Option<SequenceSet> {
    SequenceSet::from_sorted(uids.iter().map(|u| u.0))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of an IMAP date-time.
pub(super) fn timestamp(d: &DateTime) -> i64 {
    let days = days_from_civil(i64::from(d.year), i64::from(d.month), i64::from(d.day));
    days * 86_400 + i64::from(d.hour) * 3600 + i64::from(d.minute) * 60 + i64::from(d.second)
        - i64::from(d.zone_minutes) * 60
}

impl Session {
    /// COPY, or MOVE when `remove`.
    pub(super) async fn copy(
        &mut self,
        tag: &Tag,
        by_uid: bool,
        set: SequenceSet,
        mailbox: MailboxName,
        remove: bool,
    ) {
        let Some((account, from, read_only, uids)) = self.selected_parts() else {
            return;
        };
        let verb = match (by_uid, remove) {
            (false, false) => "COPY",
            (true, false) => "UID COPY",
            (false, true) => "MOVE",
            (true, true) => "UID MOVE",
        };
        if remove && read_only {
            self.no(tag, Some(Code::ReadOnly), "Mailbox is read-only");
            return;
        }
        let Ok(targets) = super::fetch::resolve(&uids, &set, by_uid) else {
            self.bad(tag, "Message sequence number out of range");
            return;
        };
        let Some(to) = self.store_name(&mailbox) else {
            self.no(tag, Some(Code::TryCreate), "No such mailbox");
            return;
        };
        let source: Vec<Uid> = targets.iter().map(|t| t.1).collect();
        let store = self.ctx.shared.store.clone();
        let result = if remove {
            store.move_messages(account, &from, &source, &to).await
        } else {
            store.copy_messages(account, &from, &source, &to).await
        };
        let (uid_validity, pairs) = match result {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => {
                self.no(tag, Some(Code::TryCreate), "No such mailbox");
                return;
            }
            Err(e) => return self.store_failed(tag, e, &verb.to_ascii_lowercase()),
        };
        let from_uids: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
        let to_uids: Vec<Uid> = pairs.iter().map(|p| p.1).collect();
        let code = match (uid_set(&from_uids), uid_set(&to_uids)) {
            (Some(from), Some(to)) => Some(Code::CopyUid {
                uid_validity,
                from,
                to,
            }),
            _ => None,
        };
        if !remove {
            self.tagged(tag, Status::Ok, code, &format!("{verb} completed"));
            return;
        }
        if code.is_some() {
            self.untagged_status(Status::Ok, code, "Moved");
        }
        // The moved messages' EXPUNGEs.
        self.announce_expunges(&from_uids.iter().copied().collect());
        self.ok(tag, &format!("{verb} completed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_compact_runs() {
        let set = |v: &[u32]| {
            uid_set(&v.iter().map(|&u| Uid(u)).collect::<Vec<_>>()).map(|s| s.to_string())
        };
        assert_eq!(set(&[]), None);
        assert_eq!(set(&[7]).as_deref(), Some("7"));
        assert_eq!(set(&[1, 2, 3, 5, 7, 8]).as_deref(), Some("1:3,5,7:8"));
    }

    #[test]
    fn imap_dates_become_timestamps() {
        let d = DateTime {
            year: 2026,
            month: 11,
            day: 22,
            hour: 10,
            minute: 0,
            second: 0,
            zone_minutes: 60,
        };
        // 2026-11-22T09:00:00Z
        assert_eq!(timestamp(&d), 1_795_338_000);
        let epoch = DateTime {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            zone_minutes: 0,
        };
        assert_eq!(timestamp(&epoch), 0);
    }
}
