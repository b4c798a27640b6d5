//! Parser tests for the search extensions: SEARCH RETURN (ESEARCH,
//! SEARCHRES, PARTIAL, UPDATE), `$`, OLDER and YOUNGER, SORT (and ESORT),
//! THREAD and CANCELUPDATE, each split at every byte.

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

fn is_bad(input: &str) -> bool {
    matches!(
        parse_command(input.as_bytes(), &Limits::default()),
        Parsed::Error { .. }
    )
}

fn set(s: &str) -> SequenceSet {
    SequenceSet::parse(s.as_bytes(), 100).expect("set")
}

#[test]
fn search_return_options() {
    assert_eq!(
        parse("a SEARCH RETURN (MIN COUNT SAVE) CHARSET UTF-8 UNSEEN\r\n"),
        CommandKind::SearchReturning {
            uid: false,
            returns: SearchReturn {
                min: true,
                count: true,
                save: true,
                ..SearchReturn::default()
            },
            charset: Some("UTF-8".into()),
            criteria: vec![SearchKey::Unseen],
        }
    );
    // RETURN () is ALL; PARTIAL's range comes in either order.
    let CommandKind::SearchReturning { uid, returns, .. } = parse("b UID SEARCH RETURN () ALL\r\n")
    else {
        panic!()
    };
    assert!(uid && returns.all && !returns.min);
    let CommandKind::SearchReturning { returns, .. } =
        parse("c SEARCH RETURN (PARTIAL 9:3 UPDATE CONTEXT) SEEN\r\n")
    else {
        panic!()
    };
    assert_eq!(returns.partial, Some((3, 9)));
    assert!(returns.update && returns.context && !returns.all);
    for bad in [
        "a SEARCH RETURN (PARTIAL 1) ALL\r\n",
        "a SEARCH RETURN (PARTIAL 1:*) ALL\r\n",
        "a SEARCH RETURN (PARTIAL 0:4) ALL\r\n",
        "a SEARCH RETURN (ALL PARTIAL 1:4) ALL\r\n",
        "a SEARCH RETURN (BOGUS) ALL\r\n",
        "a SEARCH RETURN ALL\r\n",
        "a SEARCH RETURN (MIN)\r\n",
    ] {
        assert!(is_bad(bad), "{bad:?}");
    }
    // A plain SEARCH whose first key happens to be a word stays SEARCH.
    assert!(matches!(
        parse("a SEARCH RECENT\r\n"),
        CommandKind::Search { .. }
    ));
}

#[test]
fn saved_result_and_within() {
    assert_eq!(
        parse("a SEARCH $ OLDER 3600 UID $ YOUNGER 60\r\n"),
        CommandKind::Search {
            uid: false,
            charset: None,
            criteria: vec![
                SearchKey::SequenceSet(SequenceSet::saved_result()),
                SearchKey::Older(3600),
                SearchKey::Uid(SequenceSet::saved_result()),
                SearchKey::Younger(60),
            ],
        }
    );
    let CommandKind::Fetch { uid, set, .. } = parse("a UID FETCH $ (FLAGS)\r\n") else {
        panic!()
    };
    assert!(uid && set.is_saved_result() && set.to_string() == "$");
    assert!(matches!(
        parse("a COPY $ Trash\r\n"),
        CommandKind::Copy { set, .. } if set.is_saved_result()
    ));
    assert!(!set_is_saved("1:3"));
    assert!(is_bad("a SEARCH OLDER 0\r\n"));
    assert!(is_bad("a SEARCH YOUNGER\r\n"));
}

fn set_is_saved(s: &str) -> bool {
    set(s).is_saved_result()
}

#[test]
fn sort_forms() {
    let key = |reverse, field| SortKey { reverse, field };
    assert_eq!(
        parse("a SORT (REVERSE DATE subject DISPLAYFROM) UTF-8 ALL\r\n"),
        CommandKind::Sort {
            uid: false,
            returns: None,
            keys: vec![
                key(true, SortField::Date),
                key(false, SortField::Subject),
                key(false, SortField::DisplayFrom)
            ],
            charset: "UTF-8".into(),
            criteria: vec![SearchKey::All],
        }
    );
    let CommandKind::Sort {
        uid,
        returns,
        keys,
        criteria,
        ..
    } = parse("a UID SORT RETURN (MIN MAX) (ARRIVAL) US-ASCII 1:5 UNDELETED\r\n")
    else {
        panic!()
    };
    assert!(uid && returns.as_ref().is_some_and(|r| r.min && r.max && !r.all));
    assert_eq!(keys, [key(false, SortField::Arrival)]);
    assert_eq!(
        criteria,
        [SearchKey::SequenceSet(set("1:5")), SearchKey::Undeleted]
    );
    for bad in [
        "a SORT () UTF-8 ALL\r\n",
        "a SORT (REVERSE) UTF-8 ALL\r\n",
        "a SORT (REVERSE REVERSE DATE) UTF-8 ALL\r\n",
        "a SORT (COLOUR) UTF-8 ALL\r\n",
        "a SORT (DATE) ALL\r\n",
        "a SORT (DATE) UTF-8\r\n",
    ] {
        assert!(is_bad(bad), "{bad:?}");
    }
}

#[test]
fn thread_and_cancelupdate_forms() {
    assert_eq!(
        parse("a UID THREAD REFERENCES UTF-8 SINCE 1-Feb-1994\r\n"),
        CommandKind::Thread {
            uid: true,
            algorithm: ThreadAlgorithm::References,
            charset: "UTF-8".into(),
            criteria: vec![SearchKey::Since(parse_date(b"1-Feb-1994").unwrap())],
        }
    );
    assert!(matches!(
        parse("a THREAD orderedsubject US-ASCII ALL\r\n"),
        CommandKind::Thread {
            algorithm: ThreadAlgorithm::OrderedSubject,
            ..
        }
    ));
    assert!(matches!(
        parse("a THREAD REFS UTF-8 ALL\r\n"),
        CommandKind::Thread {
            algorithm: ThreadAlgorithm::Refs,
            ..
        }
    ));
    assert!(is_bad("a THREAD KNOTS UTF-8 ALL\r\n"));
    assert_eq!(
        parse("a CANCELUPDATE \"s1\" \"s2\"\r\n"),
        CommandKind::CancelUpdate(vec![Tag::new("s1").unwrap(), Tag::new("s2").unwrap()])
    );
    assert!(is_bad("a CANCELUPDATE\r\n"));
}
