//! Modified UTF-7 mailbox names (RFC 3501 5.1.3).

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|i| i as u32)
}

/// Encodes a UTF-8 mailbox name in modified UTF-7.
pub fn encode_utf7(name: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |out: &mut String, pending: &mut Vec<u16>| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut out, &mut pending);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut out, &mut pending);
    out
}

/// Decodes a modified UTF-7 mailbox name; `None` when it is not valid.
pub fn decode_utf7(name: &[u8]) -> Option<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < name.len() {
        let c = name[i];
        if !(0x20..0x7f).contains(&c) {
            return None;
        }
        if c != b'&' {
            out.push(c as char);
            i += 1;
            continue;
        }
        let end = i + 1 + name[i + 1..].iter().position(|&b| b == b'-')?;
        let run = &name[i + 1..end];
        i = end + 1;
        if run.is_empty() {
            out.push('&');
            continue;
        }
        let mut bits = 0u32;
        let mut nbits = 0;
        let mut units = Vec::new();
        for &b in run {
            bits = (bits << 6) | b64_value(b)?;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push((bits >> nbits) as u16);
                bits &= (1 << nbits) - 1;
            }
        }
        // Leftover bits must be padding zeros, fewer than six.
        if nbits >= 6 || bits != 0 {
            return None;
        }
        let s = String::from_utf16(&units).ok()?;
        // A run must not encode what could be written directly.
        if s.chars().any(|c| (' '..='~').contains(&c)) {
            return None;
        }
        out.push_str(&s);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        assert_eq!(
            decode_utf7(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(),
            "~peter/mail/台北/日本語"
        );
        assert_eq!(
            encode_utf7("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(encode_utf7("A&B"), "A&-B");
        assert_eq!(decode_utf7(b"A&-B").unwrap(), "A&B");
        assert_eq!(encode_utf7("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(decode_utf7(b"Entw&APw-rfe").unwrap(), "Entwürfe");
        assert_eq!(encode_utf7("😀"), "&2D3eAA-");
        assert_eq!(decode_utf7(b"&2D3eAA-").unwrap(), "😀");
    }

    #[test]
    fn rejects_invalid() {
        assert!(decode_utf7(b"&U,BTFw").is_none());
        assert!(decode_utf7(b"&AGE-").is_none()); // "a" must be direct
        assert!(decode_utf7(b"&!!-").is_none());
        assert!(decode_utf7("é".as_bytes()).is_none());
        assert!(decode_utf7(b"&2D0-").is_none()); // lone surrogate
    }

    proptest::proptest! {
        #[test]
        fn round_trip(s in "\\PC*") {
            let e = encode_utf7(&s);
            proptest::prop_assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)));
            proptest::prop_assert_eq!(decode_utf7(e.as_bytes()), Some(s));
        }
    }
}
