//! The enhanced status code of SMTP replies (RFC 3463), as a value: smtpd
//! answers with it, the queue and the bounce builder carry it, and a
//! failure rule (set over the HTTP API, so not smtpd's alone) gives it.
//! It lives here, beside [`crate::rules`], so that all of them hold the
//! same type; what the codes mean in a session is smtpd's business.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An enhanced status code (RFC 3463) such as `5.1.1`: class `2`, `4` or
/// `5`, then subject and detail of one to three digits each. Kept as
/// written, so a server's code is quoted back as it sent it. In JSON it is
/// that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnhancedStatus(String);

impl EnhancedStatus {
    /// `code` if it is one.
    pub fn parse(code: &str) -> Option<EnhancedStatus> {
        let mut fields = code.split('.');
        let class_ok = matches!(fields.next(), Some("2" | "4" | "5"));
        let number = |field: Option<&str>| {
            field.is_some_and(|f| {
                (1..=3).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit())
            })
        };
        let ok =
            class_ok && number(fields.next()) && number(fields.next()) && fields.next().is_none();
        ok.then(|| EnhancedStatus(code.to_string()))
    }

    /// `2.subject.detail`.
    pub fn success(subject: u8, detail: u8) -> EnhancedStatus {
        EnhancedStatus(format!("2.{subject}.{detail}"))
    }

    /// `4.subject.detail`: try again later.
    pub fn temporary(subject: u8, detail: u8) -> EnhancedStatus {
        EnhancedStatus(format!("4.{subject}.{detail}"))
    }

    /// `5.subject.detail`: never.
    pub fn permanent(subject: u8, detail: u8) -> EnhancedStatus {
        EnhancedStatus(format!("5.{subject}.{detail}"))
    }

    /// The class: 2 (success), 4 (temporary) or 5 (permanent failure).
    pub fn class(&self) -> u8 {
        self.0.as_bytes()[0] - b'0'
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EnhancedStatus {
    type Error = String;

    fn try_from(code: String) -> Result<Self, String> {
        EnhancedStatus::parse(&code).ok_or_else(|| {
            format!("enhanced status code {code:?} is not class.subject.detail (RFC 3463)")
        })
    }
}

impl From<EnhancedStatus> for String {
    fn from(status: EnhancedStatus) -> String {
        status.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_status_codes() {
        for good in ["5.1.1", "4.2.0", "2.0.0", "5.7.123", "5.01.1"] {
            assert_eq!(EnhancedStatus::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "", "5", "5.1", "3.1.1", "5.1.1234", "5.1.1.1", "5..1", "5.a.1", "é",
        ] {
            assert_eq!(EnhancedStatus::parse(bad), None, "{bad}");
        }
        assert_eq!(EnhancedStatus::permanent(1, 1).as_str(), "5.1.1");
        assert_eq!(EnhancedStatus::temporary(3, 0).as_str(), "4.3.0");
        assert_eq!(EnhancedStatus::success(0, 0).as_str(), "2.0.0");
        assert_eq!(EnhancedStatus::temporary(3, 0).class(), 4);
        assert_eq!(EnhancedStatus::permanent(7, 1).class(), 5);
    }

    #[test]
    fn json_is_the_code_as_a_string() {
        let status: EnhancedStatus = serde_json::from_str("\"4.2.0\"").unwrap();
        assert_eq!(status, EnhancedStatus::temporary(2, 0));
        assert_eq!(serde_json::to_string(&status).unwrap(), "\"4.2.0\"");
        let bad = serde_json::from_str::<EnhancedStatus>("\"4.2\"").unwrap_err();
        assert!(bad.to_string().contains("class.subject.detail"), "{bad}");
    }
}
