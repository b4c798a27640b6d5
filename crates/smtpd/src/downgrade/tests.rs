use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::encode;
use super::*;

/// Test messages are written with `\n`; stored mail has CRLF.
fn crlf(text: &str) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

fn concat(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}

/// Every leaf part as mail-parser decodes it, enclosed messages walked
/// into: (type/subtype, decoded contents).
fn leaves(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let message = MessageParser::default()
        .parse(raw)
        .expect("mail-parser reads the message");
    let mut found = Vec::new();
    collect_leaves(&message, &mut found);
    found
}

fn collect_leaves(message: &mail_parser::Message, found: &mut Vec<(String, Vec<u8>)>) {
    for part in &message.parts {
        match &part.body {
            PartType::Multipart(_) => {}
            PartType::Message(enclosed) => collect_leaves(enclosed, found),
            _ => {
                let kind = part
                    .content_type()
                    .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")))
                    .unwrap_or_default();
                found.push((kind, part.contents().to_vec()));
            }
        }
    }
}

fn assert_seven_bit(converted: &[u8]) {
    assert!(
        converted.iter().all(|&b| b < 0x80 && b != 0),
        "8-bit byte left in {:?}",
        String::from_utf8_lossy(converted)
    );
    for line in converted.split(|&b| b == b'\n') {
        assert!(line.len() <= 998 + 1, "line of {} bytes", line.len());
    }
}

/// Converts, checks the copy is 7-bit, and checks every part decodes to
/// what it did before.
fn round_trip(raw: &[u8]) -> Vec<u8> {
    let converted = to_seven_bit(raw).expect("downgrade");
    assert_seven_bit(&converted);
    let (before, after) = (leaves(raw), leaves(&converted));
    assert_eq!(
        before.len(),
        after.len(),
        "{}",
        String::from_utf8_lossy(&converted)
    );
    for (i, (before, after)) in before.iter().zip(&after).enumerate() {
        assert!(
            before == after,
            "part {i} ({}) differs:\n{}",
            before.0,
            String::from_utf8_lossy(&converted)
                .chars()
                .take(3000)
                .collect::<String>()
        );
    }
    converted
}

/// A strict quoted-printable decoder, to check our encoder without
/// trusting a lenient one.
fn qp_decode(encoded: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    let lines: Vec<&[u8]> = encoded.split(|&b| b == b'\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        let line = if last {
            *line
        } else {
            line.strip_suffix(b"\r").expect("CRLF line ends")
        };
        assert!(line.len() <= 76, "QP line of {} chars", line.len());
        assert!(
            !line.ends_with(b" ") && !line.ends_with(b"\t"),
            "trailing blank in QP"
        );
        let (line, soft) = match line.strip_suffix(b"=") {
            Some(body) => (body, true),
            None => (line, false),
        };
        let mut at = 0;
        while at < line.len() {
            let byte = line[at];
            assert!(byte < 0x80 && byte != b'\r', "raw byte {byte:#x} in QP");
            if byte == b'=' {
                let hex = std::str::from_utf8(&line[at + 1..at + 3]).unwrap();
                assert_eq!(hex, hex.to_uppercase());
                decoded.push(u8::from_str_radix(hex, 16).unwrap());
                at += 3;
            } else {
                decoded.push(byte);
                at += 1;
            }
        }
        if !soft && !last {
            decoded.extend_from_slice(b"\r\n");
        }
    }
    decoded
}

fn qp(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode::quoted_printable(body, &mut out);
    out
}

/// xorshift64*: deterministic, no dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Bytes biased towards what trips encoders: line ends, blanks, `=`,
    /// dots, high bytes.
    fn body(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        let mut body = Vec::with_capacity(len);
        while body.len() < len {
            match self.below(10) {
                0 => body.extend_from_slice(b"\r\n"),
                1 => body.push(b' '),
                2 => body.push(b'\t'),
                3 => body.push(b'='),
                4 => body.push(b"\r\n.-"[self.below(4)]),
                5 => body.extend(std::iter::repeat_n(b'x', self.below(120))),
                _ => body.push(self.next() as u8),
            }
        }
        body
    }
}

const SEVEN_BIT: &str = "From: a@example.org\n\
To: b@example.net\n\
Subject: plain\n\
MIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"b1\"\n\
\n\
preamble\n\
--b1\n\
Content-Type: text/plain\n\
\n\
hello\n\
--b1--\n\
epilogue\n";

#[test]
fn seven_bit_message_is_byte_identical() {
    let raw = crlf(SEVEN_BIT);
    assert_eq!(to_seven_bit(&raw).unwrap(), raw);
    assert_eq!(
        needs(&raw),
        Needs {
            eight_bit: false,
            smtputf8: false
        }
    );
}

#[test]
fn needs_tells_body_from_header() {
    let body = crlf("Subject: x\n\nh\u{e9}llo\n");
    assert_eq!(
        needs(&body),
        Needs {
            eight_bit: true,
            smtputf8: false
        }
    );
    let header = crlf("Subject: h\u{e9}llo\n\nhello\n");
    assert_eq!(
        needs(&header),
        Needs {
            eight_bit: true,
            smtputf8: true
        }
    );
    let nul = b"Subject: x\r\n\r\na\0b\r\n";
    assert_eq!(
        needs(nul),
        Needs {
            eight_bit: true,
            smtputf8: false
        }
    );
}

#[test]
fn utf8_text_body_becomes_quoted_printable() {
    let raw = crlf(
        "From: a@example.org\n\
Subject: caf\x65\n\
MIME-Version: 1.0\n\
Content-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: 8bit\n\
X-After: stays\n\
\n\
Caf\u{e9} cr\u{e8}me br\u{fb}l\u{e9}e, \u{1f600} = joy \n\
second line\n",
    );
    let converted = round_trip(&raw);
    let text = String::from_utf8(converted).unwrap();
    assert_eq!(
        text,
        "From: a@example.org\r\n\
Subject: cafe\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
X-After: stays\r\n\
\r\n\
Caf=C3=A9 cr=C3=A8me br=C3=BBl=C3=A9e, =F0=9F=98=80 =3D joy=20\r\n\
second line\r\n"
    );
}

#[test]
fn message_without_content_type_is_text_plain() {
    let raw = crlf("From: a@example.org\nSubject: x\n\nna\u{ef}ve\n");
    let converted = round_trip(&raw);
    assert_eq!(
        converted,
        crlf(
            "From: a@example.org\nSubject: x\nMIME-Version: 1.0\n\
Content-Transfer-Encoding: quoted-printable\n\nna=C3=AFve\n"
        )
    );
}

const SEVEN_BIT_PART: &str = "--outer\n\
Content-Type: text/plain; charset=us-ascii\n\
\n\
Just ASCII = here.\n";

fn mixed_message() -> Vec<u8> {
    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"\r\n\0\xff\xfe");
    concat(&[
        &crlf(
            "From: a@example.org\n\
MIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=outer\n\
\n\
This is a multi-part message.\n",
        ),
        &crlf(SEVEN_BIT_PART),
        &crlf(
            "--outer\n\
Content-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: 8bit\n\
\n\
\u{fc}ber alles\n\
--outer\n\
Content-Type: application/octet-stream\n\
Content-Disposition: attachment; filename=blob.bin\n\
\n",
        ),
        &binary,
        &crlf("\n--outer--\n"),
    ])
}

#[test]
fn multipart_mixed_encodes_only_eight_bit_parts() {
    let raw = mixed_message();
    let converted = round_trip(&raw);
    let text = String::from_utf8(converted).unwrap();
    let seven_bit_part = String::from_utf8(crlf(SEVEN_BIT_PART)).unwrap();
    assert!(text.contains(&seven_bit_part), "7-bit part kept as is");
    assert!(text.contains(
        "Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=BCber alles\r\n--outer\r\n"
    ));
    assert!(text.contains(
        "Content-Disposition: attachment; filename=blob.bin\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
    ));
    assert!(text.ends_with("\r\n--outer--\r\n"));
    for line in text.split("\r\n").filter(|l| !l.starts_with("--")) {
        assert!(line.len() <= 76, "{line:?}");
    }
}

#[test]
fn nested_alternative_inside_mixed() {
    let raw = crlf(
        "Subject: nested\n\
Content-Type: multipart/mixed; boundary=\"mixed\"\n\
\n\
--mixed\n\
Content-Type: multipart/alternative; boundary=\"alt\"\n\
\n\
--alt\n\
Content-Type: text/plain; charset=utf-8\n\
\n\
\u{bf}Qu\u{e9} tal?\n\
--alt\n\
Content-Type: text/html; charset=utf-8\n\
\n\
<p>\u{bf}Qu\u{e9} tal?</p>\n\
--alt--\n\
\n\
--mixed\n\
Content-Type: image/png\n\
Content-Transfer-Encoding: base64\n\
\n\
iVBORw0KGgo=\n\
--mixed--\n",
    );
    let converted = round_trip(&raw);
    let text = String::from_utf8(converted).unwrap();
    assert_eq!(text.matches("quoted-printable").count(), 2);
    assert!(text.contains("Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"));
}

#[test]
fn enclosed_message_is_walked_into() {
    let raw = crlf(
        "Subject: fwd\n\
MIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=b\n\
\n\
--b\n\
Content-Type: text/plain\n\
\n\
See attached.\n\
--b\n\
Content-Type: message/rfc822\n\
Content-Transfer-Encoding: 8bit\n\
\n\
From: c@example.com\n\
Subject: inner\n\
\n\
Gr\u{fc}\u{df}e\n\
--b--\n",
    );
    let converted = round_trip(&raw);
    let text = String::from_utf8(converted).unwrap();
    assert!(text.contains(
        "Content-Type: message/rfc822\r\n\
Content-Transfer-Encoding: 7bit\r\n\r\n\
From: c@example.com\r\n\
Subject: inner\r\n\
MIME-Version: 1.0\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n\
Gr=C3=BC=C3=9Fe\r\n--b--\r\n"
    ));
}

#[test]
fn eight_bit_headers_are_refused() {
    let top = crlf("Subject: \u{e9}t\u{e9}\n\nplain\n");
    assert!(matches!(
        to_seven_bit(&top),
        Err(DowngradeError::EightBitHeader)
    ));

    let part = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\
Content-Type: text/plain; name=\"r\u{e9}sum\u{e9}.txt\"\n\nx\n--b--\n",
    );
    assert!(needs(&part).smtputf8);
    assert!(matches!(
        to_seven_bit(&part),
        Err(DowngradeError::EightBitHeader)
    ));

    let enclosed = crlf("Content-Type: message/rfc822\n\nFrom: J\u{f6}rg <j@example.de>\n\nhi\n");
    assert!(needs(&enclosed).smtputf8);
    assert!(matches!(
        to_seven_bit(&enclosed),
        Err(DowngradeError::EightBitHeader)
    ));
}

#[test]
fn message_global_is_base64_whole() {
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\
Content-Type: message/global\n\n\
From: J\u{f6}rg <j\u{f6}rg@example.de>\n\nhall\u{f6}\n--b--\n",
    );
    assert_eq!(
        needs(&raw),
        Needs {
            eight_bit: true,
            smtputf8: false
        }
    );
    let converted = to_seven_bit(&raw).unwrap();
    assert_seven_bit(&converted);
    let text = String::from_utf8(converted).unwrap();
    assert!(text.contains("Content-Type: message/global\r\nContent-Transfer-Encoding: base64\r\n"));
}

#[test]
fn declared_encoding_with_raw_eight_bit_is_reencoded() {
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\
Content-Type: text/plain; charset=utf-8\n\
Content-Transfer-Encoding: base64\n\n\
d\u{e9}j\u{e0} vu\n--b\n\
Content-Type: application/pdf\n\
Content-Transfer-Encoding: quoted-printable\n\n\
%PDF\u{ff}=\n--b--\n",
    );
    let converted = to_seven_bit(&raw).unwrap();
    assert_seven_bit(&converted);
    let decoded = leaves(&converted);
    assert_eq!(decoded[0].1, "d\u{e9}j\u{e0} vu".as_bytes());
    assert_eq!(decoded[1].1, "%PDF\u{ff}=".as_bytes());
    let text = String::from_utf8(converted).unwrap();
    assert!(text.contains("charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"));
    assert!(text.contains("application/pdf\r\nContent-Transfer-Encoding: base64\r\n"));
}

#[test]
fn preamble_and_epilogue_lose_eight_bit_bytes() {
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n\
Pr\u{e9}ambule\n--b\n\nok\n--b--\n\u{e9}pilogue\n",
    );
    let converted = round_trip(&raw);
    assert_eq!(
        converted,
        crlf(
            "Content-Type: multipart/mixed; boundary=b\n\n\
Pr??ambule\n--b\n\nok\n--b--\n??pilogue\n"
        )
    );
}

#[test]
fn composite_transfer_encoding_becomes_seven_bit() {
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\
Content-Transfer-Encoding: 8bit\n\n--b\n\n\u{e9}\n--b--\n",
    );
    let converted = String::from_utf8(round_trip(&raw)).unwrap();
    assert!(converted.starts_with(
        "Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    ));
}

#[test]
fn missing_close_delimiter_keeps_parts() {
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\
Content-Type: text/plain\n\nfirst\n--b\n\
Content-Type: text/plain; charset=utf-8\n\n\u{e9}t\u{e9}\n",
    );
    let converted = to_seven_bit(&raw).unwrap();
    assert_seven_bit(&converted);
    let text = String::from_utf8(converted).unwrap();
    assert!(text.contains("\r\n\r\nfirst\r\n--b\r\n"));
    assert!(text.ends_with("Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9t=C3=A9\r\n"));
}

#[test]
fn multipart_without_its_boundary_is_encoded_whole() {
    for content_type in [
        "multipart/mixed; boundary=nowhere",
        "multipart/mixed",
        "multipart/mixed; boundary=\"\"",
    ] {
        let raw = crlf(&format!(
            "Content-Type: {content_type}\n\n--elsewhere\n\n\u{e9}\n"
        ));
        let converted = String::from_utf8(to_seven_bit(&raw).unwrap()).unwrap();
        assert!(converted.contains("Content-Transfer-Encoding: base64\r\n\r\n"));
        assert_seven_bit(converted.as_bytes());
    }
}

#[test]
fn digest_parts_default_to_enclosed_messages() {
    let digest = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\n\
Subject: one\n\n\u{e9}\n--d--\n",
    );
    let converted = String::from_utf8(round_trip(&digest)).unwrap();
    assert!(converted.contains("--d\r\n\r\nSubject: one\r\nMIME-Version: 1.0\r\n"));
    let refused = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\n\
Subject: \u{e9}\n\nx\n--d--\n",
    );
    assert!(needs(&refused).smtputf8);
    assert!(to_seven_bit(&refused).is_err());
}

#[test]
fn bare_line_feeds_and_carriage_returns_survive() {
    let raw = b"Content-Type: text/plain; charset=utf-8\r\n\r\nl\xc3\xa9\nx\ry\r\n".to_vec();
    let converted = to_seven_bit(&raw).unwrap();
    assert_seven_bit(&converted);
    assert!(converted.ends_with(b"\r\n\r\nl=C3=A9=0Ax=0Dy\r\n"));
}

#[test]
fn quoted_printable_edges() {
    // A line of exactly 76 characters stays whole; 77 gets a soft break.
    let exact = [b'a'; 76];
    assert_eq!(qp(&exact), exact);
    let longer = [b'a'; 77];
    assert_eq!(qp(&longer), [&[b'a'; 75][..], b"=\r\naa"].concat());
    // Trailing blanks, before a line end and at the very end.
    assert_eq!(qp(b"a \r\nb\t\r\n \t"), b"a=20\r\nb=09\r\n =09");
    assert_eq!(qp(b"1+1=2"), b"1+1=3D2");
    assert_eq!(qp(b""), b"");
    assert_eq!(qp(b"\r\n\r\n"), b"\r\n\r\n");
    // An escape never straddles a soft break, and lines stay within 76.
    for prefix in 70..80 {
        let mut line = vec![b'x'; prefix];
        line.extend_from_slice(b"\xe9=\xe9 end ");
        let encoded = qp(&line);
        assert_eq!(qp_decode(&encoded), line);
    }
    let binary: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 128) as u8).collect();
    let encoded = qp(&binary);
    assert_eq!(qp_decode(&encoded), binary);
    let long_line = "\u{e9}t\u{e9} ".repeat(3000);
    assert_eq!(qp_decode(&qp(long_line.as_bytes())), long_line.as_bytes());
}

#[test]
fn base64_lines_are_76_characters() {
    let mut out = Vec::new();
    encode::base64(&[0xff; 200], &mut out);
    let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[..3]
        .iter()
        .all(|l| l.len() == 77 && l.ends_with(b"\r")));
    assert!(lines[4].is_empty());
}

#[test]
fn random_bodies_round_trip() {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    for round in 0..300 {
        let body = random.body(if round % 50 == 0 { 20_000 } else { 600 });
        assert_eq!(qp_decode(&qp(&body)), body, "round {round}");

        let binary = concat(&[b"Content-Type: application/octet-stream\r\n\r\n", &body]);
        round_trip(&binary);

        let text = concat(&[
            b"Content-Type: multipart/mixed; boundary=\"=_r\"\r\n\r\n--=_r\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n",
            String::from_utf8_lossy(&body).as_bytes(),
            b"\r\n--=_r\r\nContent-Type: image/gif\r\n\r\n",
            &body,
            b"\r\n--=_r--\r\n",
        ]);
        let converted = round_trip(&text);
        assert_eq!(to_seven_bit(&converted).unwrap(), converted, "idempotent");
    }
}

#[test]
fn malformed_input_never_panics() {
    let mut random = Random(42);
    let templates = [
        mixed_message(),
        crlf(SEVEN_BIT),
        crlf("Content-Type: message/rfc822\n\nContent-Type: multipart/alternative; boundary=a\n\n--a\n\n\u{e9}\n--a--\n"),
    ];
    for round in 0..3000 {
        let mut raw = templates[round % templates.len()].clone();
        for _ in 0..random.below(6) {
            let at = random.below(raw.len() + 1);
            match random.below(4) {
                0 => raw.truncate(at),
                1 => raw.insert(at, random.next() as u8),
                2 => {
                    if at < raw.len() {
                        raw[at] = b"\r\n-:\"; =\xe9"[random.below(9)];
                    }
                }
                _ => raw.splice(at..at, random.body(40)).for_each(drop),
            }
        }
        if round % 7 == 0 {
            raw = random.body(2000);
        }
        let needs = needs(&raw);
        match to_seven_bit(&raw) {
            Ok(converted) => {
                assert!(!needs.smtputf8, "round {round}");
                // A NUL in a header field stays: no transfer encoding
                // covers header fields.
                assert!(converted.iter().all(|&b| b < 0x80), "round {round}");
                if !needs.eight_bit {
                    assert_eq!(converted, raw);
                }
            }
            Err(DowngradeError::EightBitHeader) => assert!(needs.smtputf8, "round {round}"),
        }
    }
}

#[test]
fn deep_nesting_is_bounded() {
    let depth = 2000;
    let mut raw = Vec::new();
    for level in 0..depth {
        raw.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=l{level}\r\n\r\n--l{level}\r\n")
                .as_bytes(),
        );
    }
    raw.extend_from_slice("\r\n\u{e9}\r\n".as_bytes());
    let converted = to_seven_bit(&raw).unwrap();
    assert_seven_bit(&converted);
    let enclosed = "Content-Type: message/rfc822\r\n\r\n".repeat(depth) + "\r\n\u{e9}\r\n";
    assert_seven_bit(&to_seven_bit(enclosed.as_bytes()).unwrap());
}

#[test]
fn twenty_mebibytes() {
    let line = "Voil\u{e0} une ligne de texte accentu\u{e9}e, assez longue pour compter.\r\n";
    let text = line.repeat(20 * 1024 * 1024 / line.len());
    let raw = concat(&[
        b"Content-Type: multipart/mixed; boundary=big\r\n\r\n--big\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n",
        text.as_bytes(),
        b"\r\n--big\r\nContent-Type: application/octet-stream\r\n\r\n",
        text.as_bytes(),
        b"\r\n--big--\r\n",
    ]);
    let started = std::time::Instant::now();
    let converted = to_seven_bit(&raw).unwrap();
    let elapsed = started.elapsed();
    assert_seven_bit(&converted);
    assert!(elapsed.as_secs() < 20, "took {elapsed:?}");
}

#[test]
fn content_type_parameters_with_comments_and_quotes() {
    let parsed = mime::ContentType::parse(
        b" (intro) Multipart/Alternative (kind) ; charset=x;\tBOUNDARY=\"a \\\"b\\\" c\" (end)",
    )
    .unwrap();
    assert_eq!(parsed.kind, "multipart");
    assert_eq!(parsed.subtype, "alternative");
    assert_eq!(parsed.boundary.as_deref(), Some(&b"a \"b\" c"[..]));
    assert!(mime::ContentType::parse(b" text").is_none());
    assert!(mime::ContentType::parse(b"").is_none());
    let unterminated = mime::ContentType::parse(b"multipart/mixed; ;junk; boundary=\"x").unwrap();
    assert_eq!(unterminated.boundary.as_deref(), Some(&b"x"[..]));
}

#[test]
fn folded_and_repeated_transfer_encoding_is_replaced_once() {
    let raw = crlf(
        "Subject: x\n\
content-transfer-encoding :\n\t8bit (folded)\n\
X-Middle: kept\n\
Content-Transfer-Encoding: binary\n\
Content-Type: text/plain;\n charset=utf-8\n\
\n\
\u{e9}\n",
    );
    let converted = round_trip(&raw);
    assert_eq!(
        converted,
        crlf(
            "Subject: x\n\
Content-Transfer-Encoding: quoted-printable\n\
X-Middle: kept\n\
Content-Type: text/plain;\n charset=utf-8\n\
MIME-Version: 1.0\n\
\n\
=C3=A9\n"
        )
    );
}

#[test]
fn part_without_header_fields_gets_one() {
    let raw = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\n\u{e9}\n--b--\n");
    assert_eq!(
        round_trip(&raw),
        crlf(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\n\
Content-Transfer-Encoding: quoted-printable\n\n=C3=A9\n--b--\n"
        )
    );
}

#[test]
fn boundary_prefixes_are_not_delimiters() {
    // The inner boundary starts with the outer one; only exact delimiter
    // lines (with transport padding) count.
    let raw = crlf(
        "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b  \n\
Content-Type: multipart/alternative; boundary=\"b-1\"\n\n--b-1\n\
Content-Type: text/plain; charset=utf-8\n\n\u{e9}\n--b-1--\n--b--\t\n",
    );
    let converted = String::from_utf8(round_trip(&raw)).unwrap();
    assert!(converted.contains(
        "--b-1\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A9\r\n--b-1--\r\n--b--\t\r\n"
    ));
}
