//! URLAUTH (RFC 4467) with URL-PARTIAL (RFC 5550) and URLAUTH=BINARY
//! (RFC 5524): RESETKEY, GENURLAUTH and URLFETCH, and what CATENATE reads
//! of a URL.
//!
//! A URL is authorized with the INTERNAL mechanism: its token is the
//! HMAC-SHA256, in hex, of the rump URL (everything up to and with
//! `;URLAUTH=access`) under a secret key the store keeps for the mailbox
//! (made when first needed). RESETKEY forgets the key, which voids every
//! URL authorized with it. URLFETCH checks the token, the expiry, who may
//! fetch (`anonymous`, `authuser`, `user+name`, and `submit+name` for the
//! account `[imap] urlauth_submit_user`), then reads the message of the
//! URL's user; anything wrong gives NIL, never a reason. The URL's user
//! may be another account than the session's: that is how a URL reaches
//! its reader (`authuser`, `user+name`).
//!
//! An extended URLFETCH (`(url BODYPARTSTRUCTURE BINARY)`, RFC 5524)
//! answers each item in its own parentheses, BODYPARTSTRUCTURE first:
//! `* URLFETCH url (BODYPARTSTRUCTURE (...)) (BINARY ~{n}...)`. BINARY
//! undoes base64 and quoted-printable of a leaf part; a multipart or
//! message/rfc822 part, the whole message and a HEADER, TEXT or MIME
//! section go out as they are (as RFC 3516's BINARY[] and Dovecot treat
//! them); an encoding this server cannot undo gives `(BINARY NIL)`. With
//! BINARY, the BODYPARTSTRUCTURE describes what was sent, as RFC 5524's
//! examples show: encoding `7bit`, `8bit` or `binary` by the decoded
//! octets, and their size; its line count is theirs too (where Dovecot
//! 2.3 says 0). `;PARTIAL=` cuts the decoded octets.

use std::borrow::Cow;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use store::{Account, AccountId, MailboxKey, MessageSummary, MimePart, Store, StoreError, Uid};

use super::{End, Session};
use crate::protocol::binary::decode_transfer;
use crate::protocol::encode::{self, Code};
use crate::protocol::fetch_encode::{body_structure, find_part, is_message, section_bytes};
use crate::protocol::imap_url::{parse_auth_url, MessageUrl, UrlAccess};
use crate::protocol::{MailboxName, Tag, UrlFetchItem, UrlFetchWants};

/// Contents this long are written to the client from where they lie.
const DIRECT_LITERAL: usize = 64 * 1024;

/// The one mechanism.
const INTERNAL: &str = "INTERNAL";

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The INTERNAL token of a rump URL under a mailbox key.
fn token(key: &[u8], rump: &[u8]) -> String {
    hex(&hmac_sha256(key, rump))
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `NotFound` as `None`.
fn found<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Err(StoreError::NotFound(_)) => Ok(None),
        r => r.map(Some),
    }
}

/// The octets a message URL names in the account's mailbox: the message,
/// or a section of it, or a range of that; `None` if it names nothing
/// (no such mailbox, UIDVALIDITY, message or part).
pub(super) async fn url_bytes(
    store: &Store,
    account: AccountId,
    u: &MessageUrl,
) -> Result<Option<Vec<u8>>, StoreError> {
    let bytes = match &u.section {
        None => match url_raw(store, account, u).await? {
            Some((_, raw)) => raw,
            None => return Ok(None),
        },
        Some(section) => {
            let Some((raw, summary)) = url_message(store, account, u).await? else {
                return Ok(None);
            };
            match section_bytes(&raw, &summary, section) {
                Some(b) => b.into_owned(),
                None => return Ok(None),
            }
        }
    };
    Ok(Some(cut(bytes, u.partial)))
}

/// The raw message a URL of the account's names, and its mailbox; `None`
/// if there is no such mailbox, UIDVALIDITY or message.
async fn url_raw(
    store: &Store,
    account: AccountId,
    u: &MessageUrl,
) -> Result<Option<(MailboxKey, Vec<u8>)>, StoreError> {
    let key = MailboxKey::Name(store::canonical_mailbox_name(&u.mailbox));
    if let Some(validity) = u.uid_validity {
        match found(store.mailbox_index(account, key.clone()).await)? {
            Some(index) if index.uid_validity == validity => {}
            _ => return Ok(None),
        }
    }
    match found(store.message_raw(account, key.clone(), Uid(u.uid)).await)? {
        Some(Some(raw)) => Ok(Some((key, raw))),
        _ => Ok(None),
    }
}

/// [`url_raw`]'s message with its summary.
async fn url_message(
    store: &Store,
    account: AccountId,
    u: &MessageUrl,
) -> Result<Option<(Vec<u8>, Arc<MessageSummary>)>, StoreError> {
    let Some((key, raw)) = url_raw(store, account, u).await? else {
        return Ok(None);
    };
    let Some(info) = found(store.messages_by_uid(account, key, &[Uid(u.uid)]).await)? else {
        return Ok(None);
    };
    Ok(info.into_iter().next().map(|m| (raw, m.summary)))
}

impl Session {
    /// RESETKEY: forgets the key of one mailbox, or of them all.
    pub(super) async fn reset_key(
        &mut self,
        tag: &Tag,
        mailbox: Option<MailboxName>,
        mechanisms: Vec<String>,
    ) {
        let Some(account) = self.account() else {
            return;
        };
        if mechanisms.iter().any(|m| m != INTERNAL) {
            return self.no(tag, None, "Unsupported URLAUTH mechanism");
        }
        let name = match &mailbox {
            None => None,
            Some(m) => match self.store_name(m) {
                Some(n) => Some(n),
                None => return self.no(tag, Some(Code::NonExistent), "No such mailbox"),
            },
        };
        let store = self.ctx.shared.store.clone();
        match store.reset_urlauth_keys(account.id, name.as_deref()).await {
            Ok(()) => self.ok(tag, "RESETKEY completed"),
            Err(StoreError::NotFound(_)) => {
                self.no(tag, Some(Code::NonExistent), "No such mailbox")
            }
            Err(e) => self.store_failed(tag, e, "reset the key"),
        }
    }

    /// GENURLAUTH: each URL, of one of this user's mailboxes, with its
    /// INTERNAL token; all or none.
    pub(super) async fn gen_url_auth(&mut self, tag: &Tag, urls: Vec<(Vec<u8>, String)>) {
        let Some(account) = self.account() else {
            return;
        };
        let store = self.ctx.shared.store.clone();
        let mut authorized = Vec::with_capacity(urls.len());
        for (url, mechanism) in urls {
            if mechanism != INTERNAL {
                return self.no(tag, None, "Unsupported URLAUTH mechanism");
            }
            let parsed = parse_auth_url(&url)
                .filter(|u| u.authorization.is_none() && u.url.is_of(&account.address));
            let Some(parsed) = parsed else {
                return self.no(tag, Some(Code::BadUrl(url)), "Invalid URL");
            };
            let name = store::canonical_mailbox_name(&parsed.url.mailbox);
            if let Some(validity) = parsed.url.uid_validity {
                match store.mailbox_index(account.id, &name).await {
                    Ok(index) if index.uid_validity == validity => {}
                    Ok(_) | Err(StoreError::NotFound(_)) => {
                        return self.no(tag, Some(Code::BadUrl(url)), "Invalid URL")
                    }
                    Err(e) => return self.store_failed(tag, e, "read the mailbox"),
                }
            }
            let key = match store.urlauth_key(account.id, &name).await {
                Ok(key) => key,
                Err(StoreError::NotFound(_)) => {
                    return self.no(tag, Some(Code::BadUrl(url)), "Invalid URL")
                }
                Err(e) => return self.store_failed(tag, e, "make the key"),
            };
            let mut full = parsed.rump.clone();
            full.extend_from_slice(format!(":{INTERNAL}:{}", token(&key, &parsed.rump)).as_bytes());
            authorized.push(full);
        }
        let mut line = b"GENURLAUTH".to_vec();
        for url in &authorized {
            line.push(b' ');
            encode::quoted_or_literal(&mut line, url);
        }
        self.untagged(&line);
        self.ok(tag, "GENURLAUTH completed");
    }

    /// URLFETCH: each URL with what it names, or NIL, one `* URLFETCH`
    /// each; a large content goes to the client from where it lies, and
    /// what piles up is written before the next URL is read, so a session
    /// holds one content at a time.
    pub(super) async fn url_fetch(
        &mut self,
        tag: &Tag,
        urls: Vec<UrlFetchItem>,
    ) -> Result<(), End> {
        let Some(account) = self.account() else {
            return Ok(());
        };
        let store = self.ctx.shared.store.clone();
        let submit_user = self.ctx.shared.config.imap.urlauth_submit_user.clone();
        for item in urls {
            let read = async {
                let Some((owner, url)) =
                    authorize(&store, submit_user.as_deref(), &account, &item.url).await?
                else {
                    return Ok(None);
                };
                match item.extended {
                    None => Ok(url_bytes(&store, owner, &url).await?.map(Answer::Simple)),
                    Some(wants) => Ok(extended_answer(&store, owner, &url, wants)
                        .await?
                        .map(Answer::Extended)),
                }
            };
            let answer = match self.io.until_gone(read).await? {
                Ok(a) => a,
                Err(e) => {
                    self.store_failed(tag, e, "fetch the URL");
                    return Ok(());
                }
            };
            let out = &mut self.io.output;
            out.extend_from_slice(b"* URLFETCH ");
            encode::quoted_or_literal(out, &item.url);
            match answer {
                None => out.extend_from_slice(b" NIL"),
                Some(Answer::Simple(bytes)) => {
                    out.push(b' ');
                    self.content(&bytes, false).await?;
                }
                Some(Answer::Extended(x)) => {
                    if let Some(structure) = &x.structure {
                        out.extend_from_slice(b" (BODYPARTSTRUCTURE ");
                        out.extend_from_slice(structure);
                        out.push(b')');
                    }
                    match &x.content {
                        None => {}
                        Some(Content::Body(bytes)) => {
                            self.io.output.extend_from_slice(b" (BODY ");
                            self.content(bytes, true).await?;
                            self.io.output.push(b')');
                        }
                        Some(Content::Binary(None)) => {
                            self.io.output.extend_from_slice(b" (BINARY NIL)")
                        }
                        Some(Content::Binary(Some(bytes))) => {
                            self.io.output.extend_from_slice(b" (BINARY ");
                            self.content(bytes, true).await?;
                            self.io.output.push(b')');
                        }
                    }
                }
            }
            self.io.output.extend_from_slice(b"\r\n");
            self.io.flush_if_full().await?;
        }
        self.ok(tag, "URLFETCH completed");
        Ok(())
    }

    /// Octets as a string: large ones as a literal written from where
    /// they lie, ones with a NUL as a literal8 (RFC 3516), short ones
    /// quoted unless `literal`.
    async fn content(&mut self, bytes: &[u8], literal: bool) -> Result<(), End> {
        let out = &mut self.io.output;
        let eight = if bytes.contains(&0) { "~" } else { "" };
        if !eight.is_empty() || bytes.len() >= DIRECT_LITERAL {
            out.extend_from_slice(format!("{eight}{{{}}}\r\n", bytes.len()).as_bytes());
            self.io.write_through(bytes).await?;
        } else if literal {
            out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
        } else {
            encode::quoted_or_literal(out, bytes);
        }
        Ok(())
    }
}

/// One URL's answer.
enum Answer {
    /// RFC 4467's string.
    Simple(Vec<u8>),
    /// RFC 5524's items.
    Extended(Extended),
}

/// What an extended URLFETCH answers for one URL.
struct Extended {
    /// The part's BODYPARTSTRUCTURE, encoded, if asked for.
    structure: Option<Vec<u8>>,
    content: Option<Content>,
}

enum Content {
    Body(Vec<u8>),
    /// `None`: an encoding this server cannot undo.
    Binary(Option<Vec<u8>>),
}

/// The extended answer for what a URL of the account's names; `None` if
/// it names nothing.
async fn extended_answer(
    store: &Store,
    account: AccountId,
    u: &MessageUrl,
    wants: UrlFetchWants,
) -> Result<Option<Extended>, StoreError> {
    let Some((raw, summary)) = url_message(store, account, u).await? else {
        return Ok(None);
    };
    let part = match u.section.as_ref().map_or(&[][..], |s| &s.part[..]) {
        [] => &summary.body,
        numbers => match find_part(&summary.body, numbers) {
            Some(p) => p,
            None => return Ok(None),
        },
    };
    let Some(as_stored) = (match &u.section {
        None => Some(Cow::Borrowed(&raw[..])),
        Some(section) => section_bytes(&raw, &summary, section),
    }) else {
        return Ok(None);
    };
    // BINARY decodes only a leaf part named by its numbers alone.
    let decodable = u.section.as_ref().is_some_and(|s| {
        !s.part.is_empty()
            && s.text.is_none()
            && !part.content_type.eq_ignore_ascii_case("multipart")
            && !is_message(part)
    });
    let mut converted: Option<MimePart> = None;
    let content = if wants.binary {
        let decoded = if decodable {
            match decode_transfer(&part.encoding, &as_stored) {
                Ok(Cow::Owned(d)) => {
                    converted = Some(as_converted(part, &d));
                    Some(d)
                }
                Ok(Cow::Borrowed(_)) => Some(as_stored.into_owned()),
                Err(_) => None,
            }
        } else {
            Some(as_stored.into_owned())
        };
        Some(Content::Binary(decoded.map(|d| cut(d, u.partial))))
    } else if wants.body {
        Some(Content::Body(cut(as_stored.into_owned(), u.partial)))
    } else {
        None
    };
    let structure = wants.body_part_structure.then(|| {
        let mut out = Vec::new();
        body_structure(&mut out, converted.as_ref().unwrap_or(part), true);
        out
    });
    Ok(Some(Extended { structure, content }))
}

/// A leaf part as it is once its octets are `decoded`: its encoding the
/// domain of those octets (RFC 2045 2.7-2.9), its size and lines theirs.
fn as_converted(part: &MimePart, decoded: &[u8]) -> MimePart {
    let encoding = if decoded.contains(&0) {
        "binary"
    } else if decoded.iter().any(|&b| b >= 0x80) {
        "8bit"
    } else {
        "7bit"
    };
    MimePart {
        encoding: encoding.into(),
        header_offset: 0,
        body_offset: 0,
        body_end: decoded.len() as u64,
        header_end: None,
        lines: decoded.iter().filter(|&&b| b == b'\n').count() as u64,
        ..part.clone()
    }
}

/// `;PARTIAL=offset[.length]` of the octets.
fn cut(bytes: Vec<u8>, partial: Option<(u32, Option<u32>)>) -> Vec<u8> {
    let Some((offset, length)) = partial else {
        return bytes;
    };
    let start = (offset as usize).min(bytes.len());
    let end = length.map_or(bytes.len(), |l| {
        start.saturating_add(l as usize).min(bytes.len())
    });
    bytes[start..end].to_vec()
}

/// What a URLAUTH URL names, if its token is right, it has not expired
/// and `viewer` may fetch it (`submit_user`: `[imap]
/// urlauth_submit_user`); else `None`.
pub(super) async fn authorized_content(
    store: &Store,
    submit_user: Option<&str>,
    viewer: &Account,
    url: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    match authorize(store, submit_user, viewer, url).await? {
        Some((owner, u)) => url_bytes(store, owner, &u).await,
        None => Ok(None),
    }
}

/// The owner and the parsed URL of a URLAUTH URL whose token is right,
/// that has not expired and that `viewer` may fetch (RFC 4467 3:
/// `anonymous` and `authuser` anyone logged in here, `user+name` only
/// that user, `submit+name` only the submission server's account);
/// else `None`.
async fn authorize(
    store: &Store,
    submit_user: Option<&str>,
    viewer: &Account,
    url: &[u8],
) -> Result<Option<(AccountId, MessageUrl)>, StoreError> {
    let Some(parsed) = parse_auth_url(url) else {
        return Ok(None);
    };
    let Some((mechanism, given)) = &parsed.authorization else {
        return Ok(None);
    };
    if mechanism != INTERNAL || parsed.expire.is_some_and(|t| now() >= t) {
        return Ok(None);
    }
    let may = match &parsed.access {
        UrlAccess::Anonymous | UrlAccess::AuthUser => true,
        UrlAccess::User(user) => user.eq_ignore_ascii_case(&viewer.address),
        UrlAccess::Submit(_) => {
            submit_user.is_some_and(|s| s.eq_ignore_ascii_case(&viewer.address))
        }
    };
    if !may {
        return Ok(None);
    }
    let Some(address) = parsed.url.owner_address() else {
        return Ok(None);
    };
    let Some(owner) = store.account(&address).await? else {
        return Ok(None);
    };
    let name = store::canonical_mailbox_name(&parsed.url.mailbox);
    let Some(Some(key)) = found(store.existing_urlauth_key(owner.id, &name).await)? else {
        return Ok(None);
    };
    let expected = token(&key, &parsed.rump);
    if !same(expected.as_bytes(), given.to_ascii_lowercase().as_bytes()) {
        return Ok(None);
    }
    Ok(Some((owner.id, parsed.url)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_of_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than a block.
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
