//! IMAP, black-box: what FETCH and SEARCH make of a message's MIME
//! structure, addresses and date (issue 10, items 2, 3, 5, 6, 7 and 8).
//! Each message goes in with APPEND, byte for byte; the expected answers
//! are Dovecot 2.3.19's for the same bytes, where the RFCs agree.

use postern_tests::*;

const ALICE: &str = "alice@localhost";

/// A logged-in session with INBOX selected, holding `messages` (UIDs and
/// sequence numbers from 1, in order).
async fn inbox_with(messages: &[&[u8]]) -> (Server, ImapServer, Pop3Client) {
    let server = Server::start().await;
    let imap = ImapServer::start_with(&server, |_| {}).await;
    let (mut c, greeting) = Pop3Client::connect(imap.imap).await;
    assert!(greeting.starts_with("* OK "), "{greeting}");
    let r = c.imap("L", &format!("LOGIN {ALICE} \"{PASSWORD}\"")).await;
    assert!(r.last().unwrap().starts_with("L OK"), "{r:?}");
    for (i, m) in messages.iter().enumerate() {
        let tag = format!("A{i}");
        let mut cmd = format!("{tag} APPEND INBOX {{{}+}}\r\n", m.len()).into_bytes();
        cmd.extend_from_slice(m);
        cmd.extend_from_slice(b"\r\n");
        c.send(&cmd).await;
        let r = c.until_tag(&tag).await;
        assert!(r.last().unwrap().starts_with(&format!("{tag} OK")), "{r:?}");
    }
    let r = c.imap("S", "SELECT INBOX").await;
    assert!(r.last().unwrap().starts_with("S OK"), "{r:?}");
    (server, imap, c)
}

/// Sends `tag command`; returns the untagged responses, each with its
/// literals' bytes in place (`{n}\r\n` kept before them), and checks the
/// tagged one is OK.
async fn untagged(c: &mut Pop3Client, tag: &str, command: &str) -> Vec<Vec<u8>> {
    let (out, tagged) = c.responses(tag, command).await;
    assert!(
        tagged.starts_with(&format!("{tag} OK")),
        "{command}: {tagged}"
    );
    out
}

/// The one FETCH response to `command`, as bytes.
async fn fetch(c: &mut Pop3Client, command: &str) -> Vec<u8> {
    let r = untagged(c, "f", command).await;
    assert_eq!(r.len(), 1, "{command}: {r:?}");
    r.into_iter().next().unwrap()
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn same(got: Vec<u8>, want: &[u8]) {
    assert_eq!(show(&got), show(want));
    assert_eq!(got, want);
}

const FORWARD_HEAD: &[u8] = b"From: a@b\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=zz\r\n\r\n\
--zz\r\nContent-Type: text/plain\r\n\r\nsee below\r\n\
--zz\r\nContent-Type: message/rfc822\r\n\r\n";

fn forward(tail: &[u8]) -> Vec<u8> {
    [FORWARD_HEAD, tail].concat()
}

const TEXT_PART: &str =
    r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 0 NIL NIL NIL NIL)"#;
const EMPTY_BODY_ENVELOPE: &str = r#"(NIL "empty body" ((NIL NIL "c" "d")) ((NIL NIL "c" "d")) ((NIL NIL "c" "d")) NIL NIL NIL NIL NIL)"#;
const EMPTY_TEXT: &str =
    r#"("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)"#;

/// Item 2: part 2 is message/rfc822 holding only a header and the blank
/// line before the closing delimiter. Dovecot: 34, 32 and 32 octets.
#[tokio::test]
async fn forwarded_message_with_empty_body() {
    let issue = forward(b"From: c@d\r\nSubject: empty body\r\n\r\n--zz--\r\n");
    let (_server, _imap, mut c) = inbox_with(&[&issue]).await;
    same(
        fetch(&mut c, "FETCH 1 BODYSTRUCTURE").await,
        format!(
            "* 1 FETCH (BODYSTRUCTURE ({TEXT_PART}(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 34 {EMPTY_BODY_ENVELOPE} {EMPTY_TEXT} 3 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"zz\") NIL NIL NIL))"
        )
        .as_bytes(),
    );
    same(
        fetch(&mut c, "FETCH 1 BODY.PEEK[2]").await,
        b"* 1 FETCH (BODY[2] {34}\r\nFrom: c@d\r\nSubject: empty body\r\n\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 1 BODY.PEEK[2.MIME]").await,
        b"* 1 FETCH (BODY[2.MIME] {32}\r\nContent-Type: message/rfc822\r\n\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 1 BODY.PEEK[2.HEADER]").await,
        b"* 1 FETCH (BODY[2.HEADER] {32}\r\nFrom: c@d\r\nSubject: empty body\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 1 BODY.PEEK[2.TEXT]").await,
        b"* 1 FETCH (BODY[2.TEXT] {0}\r\n)",
    );
}

/// Item 2: without the blank line the part is still the message/rfc822 it
/// declares, and no delimiter line leaks into a part.
#[tokio::test]
async fn forwarded_message_without_blank_line() {
    let raw = forward(b"From: c@d\r\nSubject: empty body\r\n--zz--\r\n");
    let (_server, _imap, mut c) = inbox_with(&[&raw]).await;
    same(
        fetch(&mut c, "FETCH 1 BODYSTRUCTURE").await,
        format!(
            "* 1 FETCH (BODYSTRUCTURE ({TEXT_PART}(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 32 {EMPTY_BODY_ENVELOPE} {EMPTY_TEXT} 2 NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"zz\") NIL NIL NIL))"
        )
        .as_bytes(),
    );
    same(
        fetch(&mut c, "FETCH 1 (BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[2.HEADER])").await,
        b"* 1 FETCH (BODY[1] {9}\r\nsee below BODY[2] {32}\r\nFrom: c@d\r\nSubject: empty body\r\n BODY[2.HEADER] {30}\r\nFrom: c@d\r\nSubject: empty body)",
    );
}

/// Item 3: `x--zz` in the middle of a line is text, not a delimiter (RFC
/// 2046 5.1.1).
#[tokio::test]
async fn boundary_counts_only_at_line_start() {
    let raw = b"From: a@b\r\nSubject: b\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=zz\r\n\r\n\
--zz\r\nContent-Type: text/plain\r\n\r\nsee x--zz here\r\n\
--zz\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--zz--\r\n";
    let (_server, _imap, mut c) = inbox_with(&[raw]).await;
    same(
        fetch(&mut c, "FETCH 1 BODY.PEEK[2.MIME]").await,
        b"* 1 FETCH (BODY[2.MIME] {27}\r\nContent-Type: text/html\r\n\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 1 (BODY.PEEK[1] BODY.PEEK[2])").await,
        b"* 1 FETCH (BODY[1] {14}\r\nsee x--zz here BODY[2] {10}\r\n<p>two</p>)",
    );
    same(
        fetch(&mut c, "FETCH 1 BODY").await,
        br#"* 1 FETCH (BODY (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 0)("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 10 0) "mixed"))"#,
    );
}

/// Item 5: a local part alone stays in the ENVELOPE (RFC 3501 7.4.2;
/// Dovecot's `MISSING_DOMAIN`); display names go out as written, not
/// decoded (RFC 2047 5: no encoded-words in quotes) nor re-encoded.
#[tokio::test]
async fn envelope_addresses_as_written() {
    let local = b"From: a@b\r\nTo: localonly, bob@example.com\r\nSubject: t\r\n\r\nx\r\n";
    let names = b"From: \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" <a@b>\r\n\
To: =?x-unknown?q?abc=E9?= <c@d>, =?utf-8?q?J=C3=B6rg?= <e@f>\r\n\
Cc: J\xc3\xb6rg M\xc3\xbcller <g@h>, Caf\xe9 <i@j>\r\nSubject: t\r\n\r\nx\r\n";
    let (_server, _imap, mut c) = inbox_with(&[local, names]).await;
    same(
        fetch(&mut c, "FETCH 1 ENVELOPE").await,
        br#"* 1 FETCH (ENVELOPE (NIL "t" ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) ((NIL NIL "localonly" "MISSING_DOMAIN")(NIL NIL "bob" "example.com")) NIL NIL NIL NIL))"#,
    );
    let from = r#"(("=?utf-8?q?Gr=C3=BC=C3=9Fe?=" NIL "a" "b"))"#;
    let mut want = format!(
        "* 2 FETCH (ENVELOPE (NIL \"t\" {from} {from} {from} ((\"=?x-unknown?q?abc=E9?=\" NIL \"c\" \"d\")(\"=?utf-8?q?J=C3=B6rg?=\" NIL \"e\" \"f\")) (({{13}}\r\n"
    )
    .into_bytes();
    want.extend_from_slice(b"J\xc3\xb6rg M\xc3\xbcller NIL \"g\" \"h\")({4}\r\nCaf\xe9 NIL \"i\" \"j\")) NIL NIL NIL))");
    same(fetch(&mut c, "FETCH 2 ENVELOPE").await, &want);
}

/// Item 6: Content-MD5 is sent, an empty parameter kept, RFC 2231
/// parameters passed through as written (Dovecot's answers).
#[tokio::test]
async fn bodystructure_fields_as_written() {
    let md5 = b"From: a@b\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii; x-empty=\"\"\r\n\
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n\r\nx\r\n";
    let rfc2231 = b"From: a@b\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
Content-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename*=iso-8859-1''%E9t%E9.txt\r\n\
Content-Transfer-Encoding: base64\r\n\r\neA==\r\n";
    let unknown = b"From: a@b\r\nSubject: t\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=x-unknown-cs; name*0*=x-unknown-cs'en'%E9; name*1=\"tail\"\r\n\r\n\xe9\r\n";
    let (_server, _imap, mut c) = inbox_with(&[md5, rfc2231, unknown]).await;
    same(
        fetch(&mut c, "FETCH 1 BODYSTRUCTURE").await,
        br#"* 1 FETCH (BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii" "x-empty" "") NIL NIL "7bit" 3 1 "Q2hlY2sgSW50ZWdyaXR5IQ==" NIL NIL NIL))"#,
    );
    same(
        fetch(&mut c, "FETCH 2 BODYSTRUCTURE").await,
        br#"* 2 FETCH (BODYSTRUCTURE ("application" "octet-stream" NIL NIL NIL "base64" 6 NIL ("attachment" ("filename*" "iso-8859-1''%E9t%E9.txt")) NIL NIL))"#,
    );
    same(
        fetch(&mut c, "FETCH 3 BODYSTRUCTURE").await,
        br#"* 3 FETCH (BODYSTRUCTURE ("text" "plain" ("charset" "x-unknown-cs" "name*" "x-unknown-cs'en'%E9tail") NIL NIL "7bit" 3 1 NIL NIL NIL NIL))"#,
    );
}

/// Item 7: dates in the obsolete forms of RFC 5322 4.3 are dates, and
/// SENTON compares the day in the date's own zone.
#[tokio::test]
async fn obsolete_dates_match_sent_searches() {
    let msg = |date: &str| format!("From: a@b\r\nDate: {date}\r\nSubject: d\r\n\r\nx\r\n");
    let (one, two, three) = (
        msg("Thu, 5 Feb 2020 10:00 EST"),
        msg("1 Jan 70 00:00 GMT"),
        // 04:30 on the 6th in UTC, still the 5th where it was written.
        msg("Thu, 5 Feb 2020 23:30 EST"),
    );
    let (_server, _imap, mut c) =
        inbox_with(&[one.as_bytes(), two.as_bytes(), three.as_bytes()]).await;
    for (search, want) in [
        ("SEARCH SENTON 5-Feb-2020", "* SEARCH 1 3"),
        ("SEARCH SENTON 6-Feb-2020", "* SEARCH"),
        ("SEARCH SENTON 1-Jan-1970", "* SEARCH 2"),
        ("SEARCH SENTBEFORE 1-Jan-1971", "* SEARCH 2"),
        ("SEARCH SENTSINCE 5-Feb-2020", "* SEARCH 1 3"),
        ("SEARCH SENTBEFORE 5-Feb-2020", "* SEARCH 2"),
        ("SEARCH SENTSINCE 1-Jan-1970", "* SEARCH 1 2 3"),
    ] {
        let r = untagged(&mut c, "s", search).await;
        assert_eq!(r, [want.as_bytes().to_vec()], "{search}");
    }
}

/// Item 8: `BODY[1.1]` of a one-part message names nothing (Dovecot), and
/// `HEADER.FIELDS.NOT` adds no blank line the header does not have (RFC
/// 3501 6.4.5).
#[tokio::test]
async fn sections_of_a_one_part_message() {
    let (_server, _imap, mut c) = inbox_with(&[
        b"From: a@b\r\nSubject: s\r\n\r\nbody\r\n",
        b"From: a@b\r\nSubject: s",
        b"From: a@b\r\nSubject: s\r\n",
    ])
    .await;
    same(
        fetch(
            &mut c,
            "FETCH 1 (BODY.PEEK[1.1] BODY.PEEK[1] BODY.PEEK[1.1.1])",
        )
        .await,
        b"* 1 FETCH (BODY[1.1] {0}\r\n BODY[1] {6}\r\nbody\r\n BODY[1.1.1] {0}\r\n)",
    );
    same(
        fetch(
            &mut c,
            "FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (From Subject)]",
        )
        .await,
        b"* 1 FETCH (BODY[HEADER.FIELDS.NOT (FROM SUBJECT)] {2}\r\n\r\n)",
    );
    same(
        fetch(
            &mut c,
            "FETCH 2 BODY.PEEK[HEADER.FIELDS.NOT (From Subject)]",
        )
        .await,
        b"* 2 FETCH (BODY[HEADER.FIELDS.NOT (FROM SUBJECT)] {0}\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 2 BODY.PEEK[HEADER.FIELDS.NOT (From)]").await,
        b"* 2 FETCH (BODY[HEADER.FIELDS.NOT (FROM)] {10}\r\nSubject: s)",
    );
    same(
        fetch(
            &mut c,
            "FETCH 3 BODY.PEEK[HEADER.FIELDS.NOT (From Subject)]",
        )
        .await,
        b"* 3 FETCH (BODY[HEADER.FIELDS.NOT (FROM SUBJECT)] {0}\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 3 BODY.PEEK[HEADER.FIELDS.NOT (From)]").await,
        b"* 3 FETCH (BODY[HEADER.FIELDS.NOT (FROM)] {12}\r\nSubject: s\r\n)",
    );
}

/// RFC 3501 6.4.5: HEADER.FIELDS keeps the blank line only where the
/// header has one, and sends the fields as written. Dovecot's answers for
/// an enclosed message whose header ends the message, with and without a
/// last line break, with the blank line before the closing delimiter, and
/// running into it (the last field keeps the line break the delimiter
/// takes from HEADER).
#[tokio::test]
async fn header_fields_of_a_header_without_blank_line() {
    let (_server, _imap, mut c) = inbox_with(&[
        &forward(b"From: c@d\r\nSubject: empty body\r\n"),
        &forward(b"From: c@d\r\nSubject: empty body"),
        &forward(b"From: c@d\r\nSubject: empty body\r\n\r\n--zz--\r\n"),
        &forward(b"From: c@d\r\nSubject: empty body\r\n--zz--\r\n"),
    ])
    .await;
    same(
        fetch(
            &mut c,
            "FETCH 1 (BODY.PEEK[2.HEADER.FIELDS (From Subject)] BODY.PEEK[2.HEADER.FIELDS (From)] BODY.PEEK[2.HEADER.FIELDS (X)])",
        )
        .await,
        b"* 1 FETCH (BODY[2.HEADER.FIELDS (FROM SUBJECT)] {32}\r\nFrom: c@d\r\nSubject: empty body\r\n BODY[2.HEADER.FIELDS (FROM)] {11}\r\nFrom: c@d\r\n BODY[2.HEADER.FIELDS (X)] {0}\r\n)",
    );
    same(
        fetch(
            &mut c,
            "FETCH 2 (BODY.PEEK[2.HEADER.FIELDS (From Subject)] BODY.PEEK[2.HEADER.FIELDS (Subject)] BODY.PEEK[2.HEADER.FIELDS (X)])",
        )
        .await,
        b"* 2 FETCH (BODY[2.HEADER.FIELDS (FROM SUBJECT)] {30}\r\nFrom: c@d\r\nSubject: empty body BODY[2.HEADER.FIELDS (SUBJECT)] {19}\r\nSubject: empty body BODY[2.HEADER.FIELDS (X)] {0}\r\n)",
    );
    same(
        fetch(
            &mut c,
            "FETCH 3 (BODY.PEEK[2.HEADER.FIELDS (From Subject)] BODY.PEEK[2.HEADER.FIELDS (X)] BODY.PEEK[2.HEADER.FIELDS.NOT (From)])",
        )
        .await,
        b"* 3 FETCH (BODY[2.HEADER.FIELDS (FROM SUBJECT)] {34}\r\nFrom: c@d\r\nSubject: empty body\r\n\r\n BODY[2.HEADER.FIELDS (X)] {2}\r\n\r\n BODY[2.HEADER.FIELDS.NOT (FROM)] {23}\r\nSubject: empty body\r\n\r\n)",
    );
    same(
        fetch(
            &mut c,
            "FETCH 4 (BODY.PEEK[2.HEADER.FIELDS (From Subject)] BODY.PEEK[2.HEADER.FIELDS (X)] BODY.PEEK[2.HEADER])",
        )
        .await,
        b"* 4 FETCH (BODY[2.HEADER.FIELDS (FROM SUBJECT)] {32}\r\nFrom: c@d\r\nSubject: empty body\r\n BODY[2.HEADER.FIELDS (X)] {0}\r\n BODY[2.HEADER] {30}\r\nFrom: c@d\r\nSubject: empty body)",
    );
}

const MIME_HEAD: &[u8] = b"From: a@b\r\nSubject: s\r\nMIME-Version: 1.0\r\n";

/// A multipart without parts stays a multipart, with the one empty text
/// part Dovecot shows (BODYSTRUCTURE's grammar needs one) and no part 1
/// to fetch; an inner one likewise.
#[tokio::test]
async fn multipart_without_parts_keeps_its_type() {
    let (_server, _imap, mut c) = inbox_with(&[
        &[
            MIME_HEAD,
            b"Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts here\r\n",
        ]
        .concat(),
        &[
            MIME_HEAD,
            b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n\
--zz\r\nContent-Type: multipart/alternative; boundary=yy\r\n\r\nnothing\r\n--zz--\r\n",
        ]
        .concat(),
    ])
    .await;
    same(
        fetch(&mut c, "FETCH 1 (BODY BODYSTRUCTURE)").await,
        br#"* 1 FETCH (BODY (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0) "mixed") BODYSTRUCTURE (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "zz") NIL NIL NIL))"#,
    );
    same(
        fetch(
            &mut c,
            "FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[TEXT])",
        )
        .await,
        b"* 1 FETCH (BODY[1] {0}\r\n BODY[1.MIME] {0}\r\n BODY[TEXT] {15}\r\nno parts here\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 2 BODYSTRUCTURE").await,
        br#"* 2 FETCH (BODYSTRUCTURE ((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "alternative" ("boundary" "yy") NIL NIL NIL) "mixed" ("boundary" "zz") NIL NIL NIL))"#,
    );
    same(
        fetch(&mut c, "FETCH 2 (BODY.PEEK[1] BODY.PEEK[1.1])").await,
        b"* 2 FETCH (BODY[1] {7}\r\nnothing BODY[1.1] {0}\r\n)",
    );
}

/// An enclosed message in a transfer encoding RFC 2046 5.2.1 forbids is
/// still the message/rfc822 it says it is, read as written, as Dovecot
/// reads it: base64 text makes a header of one line (an empty envelope),
/// quoted-printable text a message like any other.
#[tokio::test]
async fn encoded_message_part_keeps_its_type() {
    let base64 = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n\
RnJvbTogY0BkDQpTdWJqZWN0OiBpbm5lcg0KDQpoaQ0K\r\n";
    let (_server, _imap, mut c) = inbox_with(&[
        &[MIME_HEAD, base64].concat(),
        &[
            MIME_HEAD,
            b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n",
            base64,
            b"--zz--\r\n",
        ]
        .concat(),
        &[
            MIME_HEAD,
            b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n\
--zz\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
From: c@d\r\nSubject: in\r\n\r\nhi\r\n--zz--\r\n",
        ]
        .concat(),
    ])
    .await;
    let empty = r#"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) 1"#;
    same(
        fetch(&mut c, "FETCH 1 BODYSTRUCTURE").await,
        format!(
            "* 1 FETCH (BODYSTRUCTURE (\"message\" \"rfc822\" NIL NIL NIL \"base64\" 46 {empty} NIL NIL NIL NIL))"
        )
        .as_bytes(),
    );
    same(
        fetch(&mut c, "FETCH 1 (BODY.PEEK[1.1] BODY.PEEK[1.HEADER])").await,
        b"* 1 FETCH (BODY[1.1] {0}\r\n BODY[1.HEADER] {46}\r\nRnJvbTogY0BkDQpTdWJqZWN0OiBpbm5lcg0KDQpoaQ0K\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 2 BODYSTRUCTURE").await,
        format!(
            "* 2 FETCH (BODYSTRUCTURE ((\"message\" \"rfc822\" NIL NIL NIL \"base64\" 46 {empty} NIL NIL NIL NIL) \"mixed\" (\"boundary\" \"zz\") NIL NIL NIL))"
        )
        .as_bytes(),
    );
    same(
        fetch(&mut c, "FETCH 2 (BODY.PEEK[1] BODY.PEEK[1.1])").await,
        b"* 2 FETCH (BODY[1] {46}\r\nRnJvbTogY0BkDQpTdWJqZWN0OiBpbm5lcg0KDQpoaQ0K\r\n BODY[1.1] {0}\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 3 BODYSTRUCTURE").await,
        br#"* 3 FETCH (BODYSTRUCTURE (("message" "rfc822" NIL NIL NIL "quoted-printable" 28 (NIL "in" ((NIL NIL "c" "d")) ((NIL NIL "c" "d")) ((NIL NIL "c" "d")) NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 2 0 NIL NIL NIL NIL) 3 NIL NIL NIL NIL) "mixed" ("boundary" "zz") NIL NIL NIL))"#,
    );
    same(
        fetch(&mut c, "FETCH 3 (BODY.PEEK[1.1] BODY.PEEK[1.HEADER])").await,
        b"* 3 FETCH (BODY[1.1] {2}\r\nhi BODY[1.HEADER] {26}\r\nFrom: c@d\r\nSubject: in\r\n\r\n)",
    );
}

const BARE_LF: &[u8] = b"From: a@b\nSubject: s\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/plain\nX-A: 1\n\none\n\
--zz\nContent-Type: message/rfc822\n\nFrom: c@d\nSubject: in\n\nhi\n--zz--\n";

/// A header written with bare line feeds (APPEND takes it as given) goes
/// out with CRLF in the sections that are header data (MIME, HEADER and
/// its field subsets), as Dovecot sends them; a partial fetch counts in
/// what is sent.
#[tokio::test]
async fn header_sections_with_bare_line_feeds_go_out_with_crlf() {
    let (_server, _imap, mut c) = inbox_with(&[BARE_LF]).await;
    same(
        fetch(&mut c, "FETCH 1 (BODY.PEEK[1.MIME] BODY.PEEK[2.MIME])").await,
        b"* 1 FETCH (BODY[1.MIME] {36}\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\n BODY[2.MIME] {32}\r\nContent-Type: message/rfc822\r\n\r\n)",
    );
    same(
        fetch(&mut c, "FETCH 1 BODY.PEEK[1.MIME]<20.10>").await,
        b"* 1 FETCH (BODY[1.MIME]<20> {10}\r\nlain\r\nX-A:)",
    );
    same(
        fetch(&mut c, "FETCH 1 (BODY.PEEK[HEADER] BODY.PEEK[2.HEADER])").await,
        b"* 1 FETCH (BODY[HEADER] {88}\r\nFrom: a@b\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n BODY[2.HEADER] {26}\r\nFrom: c@d\r\nSubject: in\r\n\r\n)",
    );
    same(
        fetch(
            &mut c,
            "FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[2.HEADER.FIELDS.NOT (From)])",
        )
        .await,
        b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: s\r\n\r\n BODY[2.HEADER.FIELDS.NOT (FROM)] {15}\r\nSubject: in\r\n\r\n)",
    );
}

/// RFC822.HEADER is BODY.PEEK[HEADER] and RFC822.TEXT is BODY[TEXT] (RFC
/// 3501 6.4.5), also where the header ends in bare line feeds: not the
/// whole message and an empty text.
#[tokio::test]
async fn rfc822_header_and_text_split_where_the_header_ends() {
    let (_server, _imap, mut c) = inbox_with(&[BARE_LF]).await;
    same(
        fetch(&mut c, "FETCH 1 RFC822.HEADER").await,
        b"* 1 FETCH (RFC822.HEADER {88}\r\nFrom: a@b\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n)",
    );
    let text = fetch(&mut c, "FETCH 1 BODY.PEEK[TEXT]").await;
    let text = text.strip_prefix(b"* 1 FETCH (BODY[TEXT] ").unwrap();
    let mut want = b"* 1 FETCH (RFC822.TEXT ".to_vec();
    want.extend_from_slice(text.strip_suffix(b")").unwrap());
    want.extend_from_slice(b" FLAGS (\\Seen \\Recent))");
    same(fetch(&mut c, "FETCH 1 RFC822.TEXT").await, &want);
}

/// Messages whose header ends oddly, each with the header section the
/// store keeps for it and the rest (the text). RFC 5322 2.1: the header is
/// the lines up to the first empty line, which ends it; a message without
/// one is all header, and one that starts with an empty line has an empty
/// header. The body's own empty first line is body. "headerword" is only
/// ever in the header, "bodyword" and "fakehdr" only in the body.
const ODD_ENDS: [(&[u8], &[u8]); 5] = [
    // Bare line feeds.
    (
        b"Subject: alpha\nX-Side: headerword\n\n",
        b"bodyword line\nX-Fake: fakehdr\n",
    ),
    // No blank line: no body.
    (b"Subject: alpha\r\nX-Side: headerword\r\n", b""),
    // A header ending in LF CR LF.
    (
        b"Subject: alpha\nX-Side: headerword\n\r\n",
        b"bodyword\r\nX-Fake: fakehdr\r\n",
    ),
    // A body that begins with an empty line.
    (
        b"Subject: alpha\r\nX-Side: headerword\r\n\r\n",
        b"\r\nbodyword\r\nX-Fake: fakehdr\r\n",
    ),
    // A message that begins with an empty line: all body.
    (b"\r\n", b"X-Side: bodyword\r\nX-Fake: fakehdr\r\n"),
];

/// `data` with each bare LF made CRLF, as header sections go out.
fn crlf(data: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(data)
        .replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// The string that follows `item ` in a FETCH response: a literal's
/// bytes, or the empty quoted string.
fn item<'a>(resp: &'a [u8], item: &str) -> &'a [u8] {
    let key = format!("{item} ");
    let at = resp
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap_or_else(|| panic!("no {item} in {}", show(resp)))
        + key.len();
    let rest = &resp[at..];
    if rest.starts_with(b"\"\"") {
        return b"";
    }
    let close = rest.iter().position(|&b| b == b'}').expect("a literal");
    let n: usize = std::str::from_utf8(&rest[1..close])
        .unwrap()
        .parse()
        .unwrap();
    &rest[close + 3..close + 3 + n]
}

/// RFC822.HEADER, BODY[HEADER] and BODY.PEEK[HEADER] are one header
/// section, RFC822.TEXT and BODY[TEXT] one text, split where the store
/// says the header ends; header (as stored) and text add up to
/// RFC822.SIZE. Header sections go out with CRLF, so with bare line feeds
/// the header sent is longer by one octet per bare LF.
#[tokio::test]
async fn header_and_text_split_at_the_stored_boundary() {
    let messages: Vec<Vec<u8>> = ODD_ENDS.iter().map(|(h, t)| [*h, *t].concat()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let (_server, _imap, mut c) = inbox_with(&refs).await;
    for (i, (header, text)) in ODD_ENDS.iter().enumerate() {
        let n = i + 1;
        let r = fetch(
            &mut c,
            &format!("FETCH {n} (RFC822.SIZE RFC822.HEADER BODY.PEEK[HEADER] BODY.PEEK[TEXT])"),
        )
        .await;
        let size: usize = {
            let s = show(&r);
            let after = s.split("RFC822.SIZE ").nth(1).unwrap().to_owned();
            after.split([' ', ')']).next().unwrap().parse().unwrap()
        };
        assert_eq!(size, header.len() + text.len(), "message {n}");
        assert_eq!(show(item(&r, "RFC822.HEADER")), show(&crlf(header)), "{n}");
        assert_eq!(show(item(&r, "BODY[HEADER]")), show(&crlf(header)), "{n}");
        assert_eq!(show(item(&r, "BODY[TEXT]")), show(text), "{n}");
        if !header.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') {
            assert_eq!(
                item(&r, "RFC822.HEADER").len() + item(&r, "BODY[TEXT]").len(),
                size,
                "message {n}: CRLF throughout, so the sections add up"
            );
        }
        let r = fetch(&mut c, &format!("FETCH {n} (RFC822.TEXT BODY[HEADER])")).await;
        assert_eq!(show(item(&r, "RFC822.TEXT")), show(text), "{n}");
        assert_eq!(show(item(&r, "BODY[HEADER]")), show(&crlf(header)), "{n}");
    }
}

/// HEADER, BODY and TEXT look on their side of the stored boundary only.
#[tokio::test]
async fn search_keys_stay_on_their_side_of_the_boundary() {
    let messages: Vec<Vec<u8>> = ODD_ENDS.iter().map(|(h, t)| [*h, *t].concat()).collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let (_server, _imap, mut c) = inbox_with(&refs).await;
    for (criteria, want) in [
        ("HEADER X-Side headerword", "SEARCH 1 2 3 4"),
        ("HEADER X-Side bodyword", "SEARCH"),
        ("HEADER X-Fake \"\"", "SEARCH"),
        ("HEADER Subject alpha", "SEARCH 1 2 3 4"),
        ("BODY headerword", "SEARCH"),
        ("BODY alpha", "SEARCH"),
        ("BODY bodyword", "SEARCH 1 3 4 5"),
        ("BODY fakehdr", "SEARCH 1 3 4 5"),
        ("TEXT headerword", "SEARCH 1 2 3 4"),
        ("TEXT fakehdr", "SEARCH 1 3 4 5"),
    ] {
        let r: Vec<String> = untagged(&mut c, "s", &format!("SEARCH {criteria}"))
            .await
            .iter()
            .map(|l| show(l))
            .collect();
        assert_eq!(r, [format!("* {want}")], "SEARCH {criteria}");
    }
}
