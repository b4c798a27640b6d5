//! Deterministic failure rules: what a test tells the SMTP server to do
//! wrong on purpose, so that an app's retry and error handling can be
//! tested against a server that refuses, waits or hangs up exactly when
//! asked (issue 11, "Deterministic failure rules").
//!
//! A [`Rule`] names a [`Stage`] of the SMTP session, a [`Match`] on the
//! envelope, how many [`Rule::times`] it fires, and an [`Action`]: a given
//! reply, a delay, or dropping the connection. [`Rules`] is the shared
//! handle: `postern up` makes one, smtpd checks it at every stage
//! ([`Rules::check`]) and the HTTP API replaces, lists and clears the
//! rules and reads the log of what fired. Mailpit's "chaos" (a reply code
//! with a probability at MAIL, RCPT and AUTH, [`ChaosTriggers`]) is here
//! too, for the clients written for it, drawn from a seedable generator so
//! that a test can repeat a run exactly.
//!
//! Where a rule applies: a rule fires only where the server would have
//! said yes (the positive reply to EHLO/HELO, AUTH, MAIL, each RCPT, the
//! end of DATA or `BDAT … LAST` before the message is queued, and the
//! greeting). A command refused anyway is refused as before and uses up
//! none of a rule's `times`. Rules are tried in order: every matching
//! delay rule adds its wait, and the first matching reply or drop rule
//! ends the search; chaos is drawn only when no rule replied or dropped.
//!
//! Types are serde-serializable in the JSON the HTTP API speaks (rules in
//! lower case, chaos in Mailpit's PascalCase).

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::RulesConfig;
use crate::enhanced_status::EnhancedStatus;

/// Where in an SMTP session a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Before the greeting. A reply becomes the greeting and the session
    /// closes after it (RFC 5321 3.1 allows a `554` greeting).
    Connect,
    /// EHLO and HELO.
    Helo,
    /// AUTH, once the credentials are good.
    Auth,
    /// MAIL FROM.
    Mail,
    /// Each RCPT TO: a reply refuses only that recipient.
    Rcpt,
    /// The end of DATA or `BDAT … LAST`, before the message is queued: a
    /// refused or dropped message is not stored.
    Data,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::Auth => "auth",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
        }
    }

    /// Whether the envelope is known here: the sender from MAIL on, the
    /// recipients from RCPT on.
    fn knows_sender(self) -> bool {
        matches!(self, Stage::Mail | Stage::Rcpt | Stage::Data)
    }

    fn knows_recipients(self) -> bool {
        matches!(self, Stage::Rcpt | Stage::Data)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An address, or every address of a domain: `alice@example.org` or
/// `*@example.org`. Both compare without regard to case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AddressPattern(String);

impl AddressPattern {
    pub fn matches(&self, address: &str) -> bool {
        match self.0.strip_prefix("*@") {
            Some(domain) => domain_of(address).is_some_and(|d| d.eq_ignore_ascii_case(domain)),
            None => address.eq_ignore_ascii_case(&self.0),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AddressPattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let Some((local, domain)) = text.rsplit_once('@') else {
            return Err(format!(
                "{text:?} is neither an address nor *@domain (no @)"
            ));
        };
        let bad = |s: &str| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad(local)
            || bad(domain)
            || domain.contains('*')
            || (local.contains('*') && local != "*")
        {
            return Err(format!("{text:?} is neither an address nor *@domain"));
        }
        Ok(AddressPattern(text))
    }
}

impl From<AddressPattern> for String {
    fn from(pattern: AddressPattern) -> String {
        pattern.0
    }
}

fn domain_of(address: &str) -> Option<&str> {
    address.rsplit_once('@').map(|(_, d)| d)
}

/// Which attempts a rule applies to. Every given field must match; none
/// given matches every attempt at the rule's stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    /// The recipient (at `rcpt`: the one being added; at `data`: any of
    /// the message's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<AddressPattern>,
    /// The envelope sender (MAIL FROM), from `mail` on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<AddressPattern>,
    /// A sandbox domain: the recipient is at that domain (at `data`: any
    /// recipient is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

impl Match {
    fn is_any(&self) -> bool {
        self.recipient.is_none() && self.sender.is_none() && self.sandbox.is_none()
    }

    fn recipient_matches(&self, address: &str) -> bool {
        self.recipient.as_ref().is_none_or(|p| p.matches(address))
            && self.sandbox.as_ref().is_none_or(|domain| {
                domain_of(address).is_some_and(|d| d.eq_ignore_ascii_case(domain))
            })
    }

    /// Whether `attempt` matches, and the address that made it match.
    fn test(&self, attempt: &Attempt<'_>) -> Option<Option<String>> {
        let mut matched = None;
        if let Some(pattern) = &self.sender {
            let sender = attempt.sender?;
            if !pattern.matches(sender) {
                return None;
            }
            matched = Some(sender.to_string());
        }
        if self.recipient.is_some() || self.sandbox.is_some() {
            let found = attempt
                .recipients
                .iter()
                .find(|r| self.recipient_matches(r))?;
            matched = Some(found.clone());
        }
        Some(matched)
    }
}

/// What a rule does when it fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    /// Answer this instead of the server's own reply (`450 4.2.0 try
    /// later`). 4xx and 5xx only, the enhanced code of the same class.
    Reply {
        code: u16,
        enhanced: EnhancedStatus,
        text: String,
    },
    /// Wait this many milliseconds, then go on as usual (at most `[rules]
    /// max_delay_ms`).
    Delay { ms: u64 },
    /// Close the connection without a reply.
    Drop,
}

/// One rule, as the HTTP API takes and lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Names the rule in the fire log. Given, or `rule-N` (its place,
    /// from 1) if empty.
    #[serde(default)]
    pub id: String,
    pub stage: Stage,
    #[serde(default, rename = "match")]
    pub matches: Match,
    /// How many times it fires; absent: every time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    pub action: Action,
}

/// A rule and how often it has fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleStatus {
    #[serde(flatten)]
    pub rule: Rule,
    pub fired: u32,
}

/// Why a set of rules or a chaos setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// A reply a rule or chaos gives, its parts typed: smtpd answers it as
/// it answers its own replies, and tells the event stream its code and
/// enhanced status as they are here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleReply {
    pub code: u16,
    pub enhanced: EnhancedStatus,
    pub text: String,
}

impl fmt::Display for RuleReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.enhanced, self.text)
    }
}

/// What the server must do instead of going on as usual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Reply(RuleReply),
    Drop,
}

/// The answer of [`Rules::check`]: wait `delay`, then give `outcome`, or
/// with none go on as usual.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub delay: Duration,
    pub outcome: Option<Outcome>,
}

/// One attempt the server is about to say yes to.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub stage: Stage,
    /// The SMTP session, as smtpd numbers them.
    pub session: u64,
    pub client: SocketAddr,
    /// MAIL FROM, from `mail` on (empty for the null sender).
    pub sender: Option<&'a str>,
    /// At `rcpt` the recipient being added; at `data` all of them.
    pub recipients: &'a [String],
}

/// One line of the fire log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firing {
    /// Counts every firing since start, from 1: a reader that saw up to
    /// N asks for what came after.
    pub seq: u64,
    /// The rule's id, or `chaos:sender`, `chaos:recipient`,
    /// `chaos:authentication`.
    pub rule: String,
    pub stage: Stage,
    pub session: u64,
    pub client: SocketAddr,
    /// The sender or recipient that matched, if the rule named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// What it did: `reply 450 4.2.0 try later`, `delay 500 ms`, `drop`.
    pub action: String,
    pub time: chrono::DateTime<chrono::Utc>,
}

/// Mailpit's chaos: per trigger a reply code and the chance in percent
/// that MAIL (`Sender`), RCPT (`Recipient`) or AUTH (`Authentication`)
/// gets it. The JSON is Mailpit's `/api/v1/chaos` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChaosTriggers {
    pub sender: ChaosTrigger,
    pub recipient: ChaosTrigger,
    pub authentication: ChaosTrigger,
}

/// One chaos trigger. An `ErrorCode` of 0 means the default (451 for MAIL
/// and RCPT, 535 for AUTH), as in Mailpit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChaosTrigger {
    pub error_code: u16,
    pub probability: u8,
}

impl Default for ChaosTriggers {
    fn default() -> Self {
        ChaosTriggers {
            sender: ChaosTrigger {
                error_code: 451,
                probability: 0,
            },
            recipient: ChaosTrigger {
                error_code: 451,
                probability: 0,
            },
            authentication: ChaosTrigger {
                error_code: 535,
                probability: 0,
            },
        }
    }
}

impl ChaosTriggers {
    /// Fills in default codes and checks the ranges Mailpit checks (codes
    /// 400–599, probabilities 0–100).
    fn validated(mut self) -> Result<ChaosTriggers, RuleError> {
        let defaults = ChaosTriggers::default();
        for (name, trigger, default) in [
            ("Sender", &mut self.sender, defaults.sender),
            ("Recipient", &mut self.recipient, defaults.recipient),
            (
                "Authentication",
                &mut self.authentication,
                defaults.authentication,
            ),
        ] {
            if trigger.error_code == 0 {
                trigger.error_code = default.error_code;
            }
            if !(400..=599).contains(&trigger.error_code) {
                return Err(RuleError(format!(
                    "{name}: error code must be between 400 and 599"
                )));
            }
            if trigger.probability > 100 {
                return Err(RuleError(format!(
                    "{name}: probability must be between 0 and 100"
                )));
            }
        }
        Ok(self)
    }

    fn any(&self) -> bool {
        self.sender.probability > 0
            || self.recipient.probability > 0
            || self.authentication.probability > 0
    }

    /// The trigger for `stage`, its name and the reply text (as Mailpit's).
    fn at(&self, stage: Stage) -> Option<(ChaosTrigger, &'static str, &'static str)> {
        match stage {
            Stage::Mail => Some((self.sender, "sender", "Chaos sender error")),
            Stage::Rcpt => Some((self.recipient, "recipient", "Chaos recipient error")),
            Stage::Auth => Some((
                self.authentication,
                "authentication",
                "Chaos authentication error",
            )),
            _ => None,
        }
    }
}

/// A rule in force, with its count.
#[derive(Debug)]
struct Active {
    rule: Rule,
    fired: AtomicU32,
}

impl Active {
    /// Takes one of the rule's firings; false when none are left.
    fn take(&self) -> bool {
        match self.rule.times {
            None => {
                self.fired.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(times) => self
                .fired
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < times).then_some(n + 1)
                })
                .is_ok(),
        }
    }
}

/// The shared rules: cheap to clone (one `Arc`), cheap to check when none
/// are set (one atomic load).
#[derive(Debug, Clone)]
pub struct Rules {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RulesConfig,
    /// Some rule or chaos trigger is set: the only thing a check reads
    /// when none is.
    armed: AtomicBool,
    rules: RwLock<Vec<Active>>,
    chaos: RwLock<ChaosTriggers>,
    random: SplitMix,
    log: Mutex<VecDeque<Firing>>,
    fired: AtomicU64,
}

impl Rules {
    pub fn new(config: &RulesConfig) -> Rules {
        let seed = config.chaos_seed.unwrap_or_else(seed_from_clock);
        Rules {
            inner: Arc::new(Inner {
                config: config.clone(),
                armed: AtomicBool::new(false),
                rules: RwLock::new(Vec::new()),
                chaos: RwLock::new(ChaosTriggers::default()),
                random: SplitMix::new(seed),
                log: Mutex::new(VecDeque::new()),
                fired: AtomicU64::new(0),
            }),
        }
    }

    /// Replaces every rule (and their counts) with `rules`, after checking
    /// all of them: on an error nothing changes. Empty ids become
    /// `rule-N`. Returns the rules as now in force.
    pub fn replace(&self, rules: Vec<Rule>) -> Result<Vec<RuleStatus>, RuleError> {
        let max = self.inner.config.max_rules;
        if rules.len() > max {
            return Err(RuleError(format!(
                "{} rules; at most {max} ([rules] max_rules)",
                rules.len()
            )));
        }
        let mut active = Vec::with_capacity(rules.len());
        for (i, mut rule) in rules.into_iter().enumerate() {
            if rule.id.is_empty() {
                rule.id = format!("rule-{}", i + 1);
            }
            self.validate(&rule)
                .map_err(|e| RuleError(format!("rule {} ({}): {e}", i + 1, rule.id)))?;
            if active.iter().any(|a: &Active| a.rule.id == rule.id) {
                return Err(RuleError(format!(
                    "rule {}: the id {:?} is used twice",
                    i + 1,
                    rule.id
                )));
            }
            active.push(Active {
                rule,
                fired: AtomicU32::new(0),
            });
        }
        let mut guard = self.inner.rules.write().unwrap_or_else(|e| e.into_inner());
        *guard = active;
        drop(guard);
        self.rearm();
        Ok(self.list())
    }

    /// The rules in force, in order, with their counts.
    pub fn list(&self) -> Vec<RuleStatus> {
        let rules = self.inner.rules.read().unwrap_or_else(|e| e.into_inner());
        rules
            .iter()
            .map(|a| RuleStatus {
                rule: a.rule.clone(),
                fired: a.fired.load(Ordering::Acquire),
            })
            .collect()
    }

    /// Removes every rule (chaos and the fire log stay).
    pub fn clear(&self) {
        self.inner
            .rules
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.rearm();
    }

    /// The fire log, oldest first: at most `[rules] fire_log_size` lines.
    pub fn fired(&self) -> Vec<Firing> {
        let log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect()
    }

    /// The fire log's lines after `seq`.
    pub fn fired_since(&self, seq: u64) -> Vec<Firing> {
        let log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().filter(|f| f.seq > seq).cloned().collect()
    }

    /// Empties the fire log (`seq` goes on counting).
    pub fn clear_fired(&self) {
        self.inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The chaos triggers in force.
    pub fn chaos(&self) -> ChaosTriggers {
        *self.inner.chaos.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the chaos triggers (a code of 0 takes the default); returns
    /// them as now in force.
    pub fn set_chaos(&self, triggers: ChaosTriggers) -> Result<ChaosTriggers, RuleError> {
        let triggers = triggers.validated()?;
        *self.inner.chaos.write().unwrap_or_else(|e| e.into_inner()) = triggers;
        self.rearm();
        Ok(triggers)
    }

    /// Restarts the chaos draws from `seed`: the same seed and the same
    /// attempts give the same failures.
    pub fn reseed(&self, seed: u64) {
        self.inner.random.reseed(seed);
    }

    /// What to do at `attempt`, recording every rule that fires. Call it
    /// where the server is about to say yes.
    pub fn check(&self, attempt: &Attempt<'_>) -> Verdict {
        let mut verdict = Verdict::default();
        if !self.inner.armed.load(Ordering::Acquire) {
            return verdict;
        }
        let rules = self.inner.rules.read().unwrap_or_else(|e| e.into_inner());
        for active in rules.iter() {
            let rule = &active.rule;
            if rule.stage != attempt.stage {
                continue;
            }
            let Some(address) = rule.matches.test(attempt) else {
                continue;
            };
            if !active.take() {
                continue;
            }
            let (text, outcome) = match &rule.action {
                Action::Delay { ms } => {
                    verdict.delay += Duration::from_millis(*ms);
                    (format!("delay {ms} ms"), None)
                }
                Action::Drop => ("drop".to_string(), Some(Outcome::Drop)),
                Action::Reply {
                    code,
                    enhanced,
                    text,
                } => {
                    let reply = RuleReply {
                        code: *code,
                        enhanced: enhanced.clone(),
                        text: text.clone(),
                    };
                    (format!("reply {reply}"), Some(Outcome::Reply(reply)))
                }
            };
            self.record(&rule.id, attempt, address, text);
            if outcome.is_some() {
                verdict.outcome = outcome;
                return verdict;
            }
        }
        drop(rules);
        let chaos = self.chaos();
        if let Some((trigger, name, text)) = chaos.at(attempt.stage) {
            if trigger.probability > 0 && self.inner.random.percent() < trigger.probability {
                let reply = chaos_reply(attempt.stage, trigger.error_code, text);
                let address = match attempt.stage {
                    Stage::Mail => attempt.sender.map(str::to_string),
                    _ => attempt.recipients.first().cloned(),
                };
                self.record(
                    &format!("chaos:{name}"),
                    attempt,
                    address,
                    format!("reply {reply}"),
                );
                verdict.outcome = Some(Outcome::Reply(reply));
            }
        }
        verdict
    }

    fn record(&self, rule: &str, attempt: &Attempt<'_>, address: Option<String>, action: String) {
        let seq = self.inner.fired.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            rule,
            stage = %attempt.stage,
            session = attempt.session,
            client = %attempt.client,
            address = address.as_deref().unwrap_or(""),
            action = %action,
            "failure rule fired"
        );
        let size = self.inner.config.fire_log_size;
        if size == 0 {
            return;
        }
        let firing = Firing {
            seq,
            rule: rule.to_string(),
            stage: attempt.stage,
            session: attempt.session,
            client: attempt.client,
            address,
            action,
            time: chrono::Utc::now(),
        };
        let mut log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
        while log.len() >= size {
            log.pop_front();
        }
        log.push_back(firing);
    }

    fn rearm(&self) {
        let any_rule = !self
            .inner
            .rules
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        let armed = any_rule || self.chaos().any();
        self.inner.armed.store(armed, Ordering::Release);
    }

    fn validate(&self, rule: &Rule) -> Result<(), String> {
        let stage = rule.stage;
        let m = &rule.matches;
        if !stage.knows_sender() && !m.is_any() {
            return Err(format!(
                "a {stage} rule cannot match on sender, recipient or sandbox: they are not known yet"
            ));
        }
        if !stage.knows_recipients() && (m.recipient.is_some() || m.sandbox.is_some()) {
            return Err(format!(
                "a {stage} rule cannot match on recipient or sandbox: they are not known yet"
            ));
        }
        if let Some(domain) = &m.sandbox {
            if domain.is_empty() || domain.contains(['@', ' ']) {
                return Err(format!("sandbox {domain:?} is not a domain"));
            }
        }
        if rule.times == Some(0) {
            return Err("times must be at least 1 (leave it out for every time)".to_string());
        }
        if rule.id.len() > 200 {
            return Err("the id is longer than 200 characters".to_string());
        }
        match &rule.action {
            Action::Reply {
                code,
                enhanced,
                text,
            } => validate_reply(*code, enhanced, text),
            Action::Delay { ms } => {
                let max = self.inner.config.max_delay_ms;
                if *ms > max {
                    Err(format!(
                        "a delay of {ms} ms is over the limit of {max} ms ([rules] max_delay_ms)"
                    ))
                } else {
                    Ok(())
                }
            }
            Action::Drop => Ok(()),
        }
    }
}

/// A rule's reply: an error (RFC 5321 4.2: `4yz` or `5yz`, `y` 0–5), an
/// enhanced status code (its form is checked as it is read) of the same
/// class, one line of printable text.
fn validate_reply(code: u16, enhanced: &EnhancedStatus, text: &str) -> Result<(), String> {
    if !(400..=599).contains(&code) || (code / 10) % 10 > 5 {
        return Err(format!(
            "reply code {code} is not a failure (4yz or 5yz, y at most 5)"
        ));
    }
    let class = code / 100;
    if u16::from(enhanced.class()) != class {
        return Err(format!(
            "enhanced status code {enhanced} has class {}, but the reply code {code} class {class}",
            enhanced.class()
        ));
    }
    if text.len() > 500 || text.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        return Err("text must be one line of printable ASCII, at most 500 characters".to_string());
    }
    Ok(())
}

/// The reply of a chaos trigger: Mailpit's text, with an enhanced code of
/// the code's class since smtpd announces ENHANCEDSTATUSCODES (for AUTH the
/// RFC 4954 ones: 5.7.8 for 535, else class.7.0).
fn chaos_reply(stage: Stage, code: u16, text: &str) -> RuleReply {
    // Chaos codes are checked to be 4xx or 5xx when set.
    let of_class = |subject, detail| match code / 100 {
        4 => EnhancedStatus::temporary(subject, detail),
        _ => EnhancedStatus::permanent(subject, detail),
    };
    let enhanced = match (stage, code) {
        (Stage::Auth, 535) => EnhancedStatus::permanent(7, 8),
        (Stage::Auth, _) => of_class(7, 0),
        _ => of_class(0, 0),
    };
    RuleReply {
        code,
        enhanced,
        text: text.to_string(),
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny generator that is
/// enough for dice and gives the same sequence for the same seed.
#[derive(Debug)]
struct SplitMix {
    state: AtomicU64,
}

impl SplitMix {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    fn new(seed: u64) -> SplitMix {
        SplitMix {
            state: AtomicU64::new(seed),
        }
    }

    fn reseed(&self, seed: u64) {
        self.state.store(seed, Ordering::Release);
    }

    fn next(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(Self::GAMMA, Ordering::AcqRel)
            .wrapping_add(Self::GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0 to 99, evenly enough (the high 32 bits scaled, no modulo bias to
    /// speak of).
    fn percent(&self) -> u8 {
        (((self.next() >> 32) * 100) >> 32) as u8
    }
}

fn seed_from_clock() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules::new(&RulesConfig {
            chaos_seed: Some(7),
            fire_log_size: 3,
            ..RulesConfig::default()
        })
    }

    fn client() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn attempt<'a>(stage: Stage, sender: Option<&'a str>, recipients: &'a [String]) -> Attempt<'a> {
        Attempt {
            stage,
            session: 1,
            client: client(),
            sender,
            recipients,
        }
    }

    fn status(code: &str) -> EnhancedStatus {
        EnhancedStatus::parse(code).unwrap()
    }

    fn reply(code: u16, enhanced: &str, text: &str) -> Action {
        Action::Reply {
            code,
            enhanced: status(enhanced),
            text: text.into(),
        }
    }

    fn rcpt(address: &str) -> Vec<String> {
        vec![address.to_string()]
    }

    #[test]
    fn json_shape() {
        let json = r#"[
            {"id": "later", "stage": "rcpt", "match": {"recipient": "a@x.test"}, "times": 2,
             "action": {"type": "reply", "code": 450, "enhanced": "4.2.0", "text": "try later"}},
            {"stage": "data", "action": {"type": "drop"}},
            {"stage": "mail", "match": {"sender": "*@app.test"}, "action": {"type": "delay", "ms": 200}}
        ]"#;
        let parsed: Vec<Rule> = serde_json::from_str(json).unwrap();
        assert_eq!(parsed[0].stage, Stage::Rcpt);
        assert_eq!(parsed[0].times, Some(2));
        assert_eq!(parsed[1].action, Action::Drop);
        assert_eq!(parsed[2].action, Action::Delay { ms: 200 });
        let r = rules();
        let listed = r.replace(parsed).unwrap();
        assert_eq!(listed[1].rule.id, "rule-2");
        let out = serde_json::to_value(&listed[0]).unwrap();
        assert_eq!(out["id"], "later");
        assert_eq!(out["match"]["recipient"], "a@x.test");
        assert_eq!(out["fired"], 0);
        assert_eq!(out["action"]["type"], "reply");
        // Unknown fields and bad patterns are refused when parsed.
        assert!(serde_json::from_str::<Rule>(
            r#"{"stage":"rcpt","action":{"type":"drop"},"when":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Rule>(
            r#"{"stage":"rcpt","match":{"recipient":"nobody"},"action":{"type":"drop"}}"#
        )
        .is_err());
        assert!(
            serde_json::from_str::<Rule>(r#"{"stage":"quit","action":{"type":"drop"}}"#).is_err()
        );
    }

    #[test]
    fn address_patterns() {
        let p = |s: &str| AddressPattern::try_from(s.to_string());
        assert!(p("a@x.test").unwrap().matches("A@X.Test"));
        assert!(!p("a@x.test").unwrap().matches("b@x.test"));
        assert!(p("*@x.test").unwrap().matches("anyone@X.TEST"));
        assert!(!p("*@x.test").unwrap().matches("anyone@y.x.test"));
        assert!(!p("*@x.test").unwrap().matches(""));
        for bad in [
            "",
            "x.test",
            "@x.test",
            "a@",
            "a*@x.test",
            "*@*.test",
            "a b@x.test",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_are_validated() {
        let r = rules();
        for (code, enhanced, ok) in [
            (450, "4.2.0", true),
            (552, "5.3.4", true),
            (554, "5.7.1", true),
            (421, "4.4.2", true),
            (250, "2.0.0", false),
            (354, "3.0.0", false),
            (600, "6.0.0", false),
            (470, "4.0.0", false),
            (450, "5.2.0", false),
            (550, "5.1", false),
            (550, "5.1.1000", false),
            (550, "x.1.1", false),
        ] {
            // A code of no RFC 3463 form is refused as the rule is read.
            let Some(enhanced) = EnhancedStatus::parse(enhanced) else {
                assert!(!ok, "{code} {enhanced}");
                let json = format!(
                    r#"{{"type": "reply", "code": {code}, "enhanced": "{enhanced}", "text": "t"}}"#
                );
                let e = serde_json::from_str::<Action>(&json).unwrap_err();
                assert!(e.to_string().contains("class.subject.detail"), "{e}");
                continue;
            };
            let rule = Rule {
                id: String::new(),
                stage: Stage::Rcpt,
                matches: Match::default(),
                times: None,
                action: Action::Reply {
                    code,
                    enhanced: enhanced.clone(),
                    text: "text".into(),
                },
            };
            assert_eq!(r.replace(vec![rule]).is_ok(), ok, "{code} {enhanced}");
        }
        let bad_text = Rule {
            id: String::new(),
            stage: Stage::Rcpt,
            matches: Match::default(),
            times: None,
            action: reply(450, "4.2.0", "two\r\nlines"),
        };
        assert!(r.replace(vec![bad_text]).is_err());
    }

    #[test]
    fn stages_only_match_what_they_know() {
        let r = rules();
        let sender = Match {
            sender: Some(AddressPattern::try_from("a@x.test".to_string()).unwrap()),
            ..Match::default()
        };
        let recipient = Match {
            recipient: Some(AddressPattern::try_from("a@x.test".to_string()).unwrap()),
            ..Match::default()
        };
        let rule = |stage, matches: &Match| Rule {
            id: String::new(),
            stage,
            matches: matches.clone(),
            times: None,
            action: Action::Drop,
        };
        assert!(r.replace(vec![rule(Stage::Connect, &sender)]).is_err());
        assert!(r.replace(vec![rule(Stage::Helo, &recipient)]).is_err());
        assert!(r.replace(vec![rule(Stage::Mail, &recipient)]).is_err());
        assert!(r.replace(vec![rule(Stage::Mail, &sender)]).is_ok());
        assert!(r.replace(vec![rule(Stage::Data, &recipient)]).is_ok());
        // Refused: nothing changed.
        assert_eq!(r.list().len(), 1);
        let over = Rule {
            action: Action::Delay { ms: 10_000_000 },
            ..rule(Stage::Mail, &Match::default())
        };
        let e = r.replace(vec![over]).unwrap_err();
        assert!(e.0.contains("max_delay_ms"), "{e}");
        let twice = vec![
            Rule {
                id: "x".into(),
                ..rule(Stage::Mail, &sender)
            },
            Rule {
                id: "x".into(),
                ..rule(Stage::Rcpt, &sender)
            },
        ];
        assert!(r.replace(twice).is_err());
        let zero = Rule {
            times: Some(0),
            ..rule(Stage::Mail, &sender)
        };
        assert!(r.replace(vec![zero]).is_err());
    }

    #[test]
    fn a_rule_fires_its_times_then_stops() {
        let r = rules();
        r.replace(vec![Rule {
            id: "later".into(),
            stage: Stage::Rcpt,
            matches: Match {
                recipient: Some(AddressPattern::try_from("a@x.test".to_string()).unwrap()),
                ..Match::default()
            },
            times: Some(2),
            action: reply(450, "4.2.0", "try later"),
        }])
        .unwrap();
        let a = rcpt("a@x.test");
        let b = rcpt("b@x.test");
        // Another recipient and another stage take none of its times.
        assert_eq!(
            r.check(&attempt(Stage::Rcpt, Some("s@y"), &b)),
            Verdict::default()
        );
        assert_eq!(
            r.check(&attempt(Stage::Mail, Some("s@y"), &[])),
            Verdict::default()
        );
        for _ in 0..2 {
            let v = r.check(&attempt(Stage::Rcpt, Some("s@y"), &a));
            assert_eq!(
                v.outcome,
                Some(Outcome::Reply(RuleReply {
                    code: 450,
                    enhanced: status("4.2.0"),
                    text: "try later".into()
                }))
            );
        }
        assert_eq!(
            r.check(&attempt(Stage::Rcpt, Some("s@y"), &a)),
            Verdict::default()
        );
        assert_eq!(r.list()[0].fired, 2);
        let log = r.fired();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].rule, "later");
        assert_eq!(log[0].stage, Stage::Rcpt);
        assert_eq!(log[0].address.as_deref(), Some("a@x.test"));
        assert_eq!(log[0].action, "reply 450 4.2.0 try later");
        assert_eq!(log[1].seq, 2);
        assert_eq!(r.fired_since(1).len(), 1);
        r.clear();
        assert!(r.list().is_empty());
        assert_eq!(r.fired().len(), 2, "clearing rules keeps the log");
    }

    #[test]
    fn delays_add_up_and_the_first_reply_or_drop_wins() {
        let r = rules();
        let any = |stage, action| Rule {
            id: String::new(),
            stage,
            matches: Match::default(),
            times: None,
            action,
        };
        r.replace(vec![
            any(Stage::Data, Action::Delay { ms: 100 }),
            any(Stage::Data, Action::Delay { ms: 50 }),
            Rule {
                matches: Match {
                    sandbox: Some("sb1.test".into()),
                    ..Match::default()
                },
                ..any(Stage::Data, Action::Drop)
            },
            any(Stage::Data, reply(552, "5.3.4", "too big")),
        ])
        .unwrap();
        let recipients = vec!["a@x.test".to_string(), "b@SB1.test".to_string()];
        let v = r.check(&attempt(Stage::Data, Some(""), &recipients));
        assert_eq!(v.delay, Duration::from_millis(150));
        assert_eq!(v.outcome, Some(Outcome::Drop));
        let log = r.fired();
        // The log holds the last three (fire_log_size).
        assert_eq!(log.len(), 3);
        assert_eq!(log[2].address.as_deref(), Some("b@SB1.test"));
        let other = rcpt("a@x.test");
        let v = r.check(&attempt(Stage::Data, Some(""), &other));
        assert_eq!(v.delay, Duration::from_millis(150));
        assert!(matches!(v.outcome, Some(Outcome::Reply(ref r)) if r.code == 552));
        assert_eq!(
            r.list().iter().map(|s| s.fired).collect::<Vec<_>>(),
            [2, 2, 1, 1]
        );
    }

    #[test]
    fn chaos_is_mailpits_and_repeats_with_its_seed() {
        let r = rules();
        assert_eq!(r.chaos(), ChaosTriggers::default());
        let json = r#"{"Sender": {"Probability": 50}, "Recipient": {"ErrorCode": 550, "Probability": 100}}"#;
        let set = r.set_chaos(serde_json::from_str(json).unwrap()).unwrap();
        assert_eq!(set.sender.error_code, 451);
        assert_eq!(set.authentication.error_code, 535);
        let out = serde_json::to_value(set).unwrap();
        assert_eq!(out["Recipient"]["ErrorCode"], 550);
        assert_eq!(out["Authentication"]["Probability"], 0);
        assert!(r
            .set_chaos(serde_json::from_str(r#"{"Sender": {"ErrorCode": 399}}"#).unwrap())
            .is_err());
        assert!(r
            .set_chaos(serde_json::from_str(r#"{"Sender": {"Probability": 101}}"#).unwrap())
            .is_err());

        let a = rcpt("a@x.test");
        let v = r.check(&attempt(Stage::Rcpt, Some("s@y"), &a));
        assert_eq!(
            v.outcome,
            Some(Outcome::Reply(RuleReply {
                code: 550,
                enhanced: status("5.0.0"),
                text: "Chaos recipient error".into()
            }))
        );
        assert_eq!(r.fired().last().unwrap().rule, "chaos:recipient");
        // No trigger for HELO or DATA.
        assert_eq!(
            r.check(&attempt(Stage::Data, Some("s@y"), &a)),
            Verdict::default()
        );
        let draws = |r: &Rules| -> Vec<bool> {
            (0..200)
                .map(|_| {
                    r.check(&attempt(Stage::Mail, Some("s@y"), &[]))
                        .outcome
                        .is_some()
                })
                .collect()
        };
        r.reseed(42);
        let first = draws(&r);
        r.reseed(42);
        assert_eq!(draws(&r), first);
        let hits = first.iter().filter(|&&h| h).count();
        assert!((70..130).contains(&hits), "{hits} of 200 at 50%");
        // Probability 0 everywhere disarms it.
        r.set_chaos(ChaosTriggers::default()).unwrap();
        assert_eq!(
            r.check(&attempt(Stage::Rcpt, Some("s@y"), &a)),
            Verdict::default()
        );
    }

    #[test]
    fn percent_is_spread_over_0_to_99() {
        let g = SplitMix::new(1);
        let mut seen = [0u32; 100];
        for _ in 0..100_000 {
            seen[usize::from(g.percent())] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
    }
}
