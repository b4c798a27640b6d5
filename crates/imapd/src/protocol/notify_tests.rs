//! Parser tests for NOTIFY (RFC 5465): RFC 5465's examples and every
//! filter and event, split at every byte, and what is refused.

use super::*;

fn parse(input: &str) -> CommandKind {
    let bytes = input.as_bytes();
    for i in 0..bytes.len() {
        assert!(
            matches!(
                parse_command(&bytes[..i], &Limits::default()),
                Parsed::Incomplete
            ),
            "prefix {i} of {input:?}"
        );
    }
    match parse_command(bytes, &Limits::default()) {
        Parsed::Complete { command, consumed } => {
            assert_eq!(consumed, bytes.len(), "{input:?}");
            command.kind
        }
        other => panic!("{input:?}: {other:?}"),
    }
}

/// The BAD message, or a panic if it parses.
fn bad(input: &str) -> String {
    match parse_command(input.as_bytes(), &Limits::default()) {
        Parsed::Error { message, .. } => message,
        other => panic!("{input:?} should fail: {other:?}"),
    }
}

fn mailbox(name: &str) -> MailboxName {
    MailboxName::from_bytes(name.as_bytes())
}

fn set(status: bool, groups: Vec<NotifyGroup>) -> CommandKind {
    CommandKind::Notify(Some(NotifySet { status, groups }))
}

fn group(filter: NotifyFilter, events: Vec<NotifyEvent>) -> NotifyGroup {
    NotifyGroup { filter, events }
}

#[test]
fn rfc_5465_examples() {
    use NotifyEvent as E;
    // Section 3.1, the events in parentheses as erratum 2318 has them.
    let kind = parse(
        "e notify set (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (subtree Lists (MessageNew MessageExpunge)) (mailboxes misc (MessageNew MessageExpunge))\r\n",
    );
    let CommandKind::Notify(Some(NotifySet { status, groups })) = kind else {
        panic!("{kind:?}");
    };
    assert!(!status);
    assert_eq!(groups.len(), 3);
    assert_eq!(groups[0].filter, NotifyFilter::Selected);
    let E::MessageNew(attributes) = &groups[0].events[0] else {
        panic!("{groups:?}");
    };
    assert_eq!(attributes.len(), 2);
    assert_eq!(attributes[0], FetchAttribute::Uid);
    assert_eq!(groups[0].events[1], E::MessageExpunge);
    assert_eq!(
        groups[1],
        group(
            NotifyFilter::Subtree(vec![mailbox("Lists")]),
            vec![E::MessageNew(vec![]), E::MessageExpunge]
        )
    );
    assert_eq!(
        groups[2].filter,
        NotifyFilter::Mailboxes(vec![mailbox("misc")])
    );
    assert_eq!(parse("a NOTIFY NONE\r\n"), CommandKind::Notify(None));
}

#[test]
fn every_filter_and_event() {
    use NotifyEvent as E;
    assert_eq!(
        parse("a NOTIFY SET STATUS (PERSONAL (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)) (INBOXES NONE) (SUBSCRIBED (MailboxName))\r\n"),
        set(
            true,
            vec![
                group(
                    NotifyFilter::Personal,
                    vec![
                        E::MessageNew(vec![]),
                        E::MessageExpunge,
                        E::FlagChange,
                        E::MailboxName,
                        E::SubscriptionChange
                    ]
                ),
                group(NotifyFilter::Inboxes, vec![]),
                group(NotifyFilter::Subscribed, vec![E::MailboxName]),
            ]
        )
    );
    assert_eq!(
        parse("a notify set (selected-delayed (messageexpunge messagenew)) (subtree (INBOX \"a b\" {1+}\r\nc) (MailboxMetadataChange ServerMetadataChange AnnotationChange MessageNew MessageExpunge))\r\n"),
        set(
            false,
            vec![
                group(
                    NotifyFilter::SelectedDelayed,
                    vec![E::MessageExpunge, E::MessageNew(vec![])]
                ),
                group(
                    NotifyFilter::Subtree(vec![mailbox("INBOX"), mailbox("a b"), mailbox("c")]),
                    vec![
                        E::MailboxMetadataChange,
                        E::ServerMetadataChange,
                        E::AnnotationChange,
                        E::MessageNew(vec![]),
                        E::MessageExpunge
                    ]
                ),
            ]
        )
    );
}

#[test]
fn what_is_refused() {
    for (input, why) in [
        ("a NOTIFY\r\n", "expected space"),
        ("a NOTIFY SET\r\n", "expected space"),
        ("a NOTIFY LATER\r\n", "expected NOTIFY SET or NOTIFY NONE"),
        ("a NOTIFY SET STATUS\r\n", "expected space"),
        (
            "a NOTIFY SET NOW (PERSONAL NONE)\r\n",
            "expected STATUS or an event group",
        ),
        ("a NOTIFY SET (PERSONAL)\r\n", "expected space"),
        ("a NOTIFY SET (PERSONAL ())\r\n", "expected atom"),
        ("a NOTIFY SET (PERSONAL ALL)\r\n", "expected events or NONE"),
        (
            "a NOTIFY SET (ELSEWHERE NONE)\r\n",
            "unknown NOTIFY mailbox filter",
        ),
        (
            "a NOTIFY SET (SELECTED-DELAYED (MessageNew))\r\n",
            "MessageNew and MessageExpunge must be together",
        ),
        (
            "a NOTIFY SET (SELECTED (MessageExpunge))\r\n",
            "MessageNew and MessageExpunge must be together",
        ),
        (
            "a NOTIFY SET (SELECTED (FlagChange))\r\n",
            "FlagChange requires MessageNew and MessageExpunge",
        ),
        (
            "a NOTIFY SET (PERSONAL (Nothing))\r\n",
            "unknown NOTIFY event",
        ),
        (
            "a NOTIFY SET (PERSONAL (MessageNew (UID) MessageExpunge))\r\n",
            "fetch attributes only for the selected mailbox",
        ),
        (
            "a NOTIFY SET (SELECTED (MessageNew (NOPE) MessageExpunge))\r\n",
            "unknown fetch item",
        ),
        (
            "a NOTIFY SET (SELECTED NONE) (SELECTED-DELAYED NONE)\r\n",
            "Duplicate selected filter",
        ),
        ("a NOTIFY SET (SUBTREE () (MailboxName))\r\n", "empty list"),
        (
            "a NOTIFY SET (SELECTED (MessageNew MessageExpunge MailboxName))\r\n",
            "Only message events for the selected mailbox",
        ),
        ("a NOTIFY SET (PERSONAL (MailboxName)\r\n", "expected )"),
        ("a NOTIFY SET (PERSONAL (MailboxName)) \r\n", "expected ("),
    ] {
        let message = bad(input);
        assert!(message.contains(why), "{input:?}: {message}");
    }
}

/// Outside the selected filter a message event may come alone, as
/// Dovecot takes it (its STATUS then carries what that event implies).
#[test]
fn message_events_alone_for_other_mailboxes() {
    for input in [
        "a NOTIFY SET (PERSONAL (MessageNew))\r\n",
        "a NOTIFY SET STATUS (MAILBOXES x (MessageExpunge))\r\n",
        "a NOTIFY SET (SUBTREE x (FlagChange))\r\n",
    ] {
        assert!(
            matches!(parse(input), CommandKind::Notify(Some(_))),
            "{input}"
        );
    }
}
