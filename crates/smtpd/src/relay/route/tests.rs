//! Routing against a DNS server that answers what the test says, on a free
//! UDP port of 127.0.0.1.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::config::{RelayConfig, RelayTls, Transport};
use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX};
use hickory_resolver::proto::rr::{Name, RData, Record};
use tokio::net::UdpSocket;

use super::*;

/// The records a fake DNS server knows. A name absent from `records` is
/// NXDOMAIN; a name present without records of the asked type is NODATA.
#[derive(Default)]
struct Zone {
    records: HashMap<String, Vec<RData>>,
    servfail: HashSet<String>,
}

impl Zone {
    fn add(&mut self, name: &str, data: RData) -> &mut Self {
        self.records.entry(name.to_string()).or_default().push(data);
        self
    }
    fn mx(&mut self, name: &str, preference: u16, exchange: &str) -> &mut Self {
        let exchange = Name::from_ascii(format!("{exchange}.")).unwrap();
        self.add(name, RData::MX(MX::new(preference, exchange)))
    }
    fn a(&mut self, name: &str, ip: &str) -> &mut Self {
        self.add(name, RData::A(A(ip.parse().unwrap())))
    }
    fn aaaa(&mut self, name: &str, ip: &str) -> &mut Self {
        self.add(name, RData::AAAA(AAAA(ip.parse().unwrap())))
    }
    /// A name that exists (so NODATA for every type) with no records.
    fn exists(&mut self, name: &str) -> &mut Self {
        self.records.entry(name.to_string()).or_default();
        self
    }
}

/// Serves `zone` over UDP until the test's runtime ends.
async fn dns_server(zone: Zone) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let zone = Arc::new(zone);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let answer = respond(&zone, &query);
            let _ = socket.send_to(&answer.to_vec().unwrap(), from).await;
        }
    });
    addr
}

fn respond(zone: &Zone, query: &Message) -> Message {
    let mut answer = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    answer.metadata.recursion_available = true;
    let Some(question) = query.queries.first() else {
        answer.metadata.response_code = ResponseCode::FormErr;
        return answer;
    };
    answer.add_query(question.clone());
    let name = question
        .name
        .to_ascii()
        .trim_end_matches('.')
        .to_lowercase();
    if zone.servfail.contains(&name) {
        answer.metadata.response_code = ResponseCode::ServFail;
        return answer;
    }
    let Some(records) = zone.records.get(&name) else {
        answer.metadata.response_code = ResponseCode::NXDomain;
        return answer;
    };
    for data in records
        .iter()
        .filter(|d| d.record_type() == question.query_type)
    {
        answer.add_answer(Record::from_rdata(question.name.clone(), 60, data.clone()));
    }
    answer
}

async fn router_with(zone: Zone, adjust: impl FnOnce(&mut RelayConfig)) -> Router {
    let mut config = RelayConfig {
        dns_servers: vec![dns_server(zone).await],
        mx_port: 2525,
        ..RelayConfig::default()
    };
    adjust(&mut config);
    Router::new(&config).unwrap()
}

fn addrs(hops: &[Hop]) -> Vec<String> {
    hops.iter()
        .map(|h| format!("{} {}", h.host, h.addr))
        .collect()
}

fn transport(host: &str) -> Transport {
    Transport {
        host: host.into(),
        tls: RelayTls::Encrypt,
        username: None,
        password: None,
    }
}

#[tokio::test]
async fn mx_records_sorted_by_preference_and_resolved() {
    let mut zone = Zone::default();
    zone.mx("example.test", 20, "mx2.example.test")
        .mx("example.test", 10, "mx1.example.test")
        .mx("example.test", 20, "mx3.example.test")
        .a("mx1.example.test", "192.0.2.1")
        .aaaa("mx1.example.test", "2001:db8::1")
        .a("mx2.example.test", "192.0.2.2")
        .a("mx3.example.test", "192.0.2.3");
    let router = router_with(zone, |_| {}).await;
    let hops = router.route("Example.TEST").await.unwrap();
    assert_eq!(
        addrs(&hops),
        [
            "mx1.example.test 192.0.2.1:2525",
            "mx1.example.test [2001:db8::1]:2525",
            "mx2.example.test 192.0.2.2:2525",
            "mx3.example.test 192.0.2.3:2525",
        ]
    );
    assert!(hops
        .iter()
        .all(|h| h.tls == RelayTls::May && h.auth.is_none()));
}

#[tokio::test]
async fn mx_host_without_address_is_skipped() {
    let mut zone = Zone::default();
    zone.mx("example.test", 10, "gone.example.test")
        .mx("example.test", 20, "mx.example.test")
        .a("mx.example.test", "192.0.2.9");
    let router = router_with(zone, |_| {}).await;
    let hops = router.route("example.test").await.unwrap();
    assert_eq!(addrs(&hops), ["mx.example.test 192.0.2.9:2525"]);
}

#[tokio::test]
async fn no_mx_falls_back_to_the_domain_address() {
    let mut zone = Zone::default();
    zone.a("plain.test", "192.0.2.7");
    let router = router_with(zone, |_| {}).await;
    let hops = router.route("plain.test").await.unwrap();
    assert_eq!(addrs(&hops), ["plain.test 192.0.2.7:2525"]);
}

#[tokio::test]
async fn nxdomain_and_no_address_are_permanent() {
    let mut zone = Zone::default();
    zone.exists("empty.test");
    zone.mx("deadmx.test", 10, "nowhere.test");
    let router = router_with(zone, |_| {}).await;
    let e = router.route("missing.test").await.unwrap_err();
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let e = router.route("empty.test").await.unwrap_err();
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("no MX and no address"), "{e}");
    let e = router.route("deadmx.test").await.unwrap_err();
    assert!(!e.is_temporary(), "{e}");
}

#[tokio::test]
async fn null_mx_is_permanent() {
    let mut zone = Zone::default();
    zone.add("nomail.test", RData::MX(MX::new(0, Name::root())))
        .a("nomail.test", "192.0.2.1");
    let router = router_with(zone, |_| {}).await;
    let e = router.route("nomail.test").await.unwrap_err();
    assert!(!e.is_temporary(), "{e}");
    assert!(e.to_string().contains("null MX"), "{e}");
}

#[tokio::test]
async fn servfail_is_temporary() {
    let mut zone = Zone::default();
    zone.servfail.insert("broken.test".into());
    zone.mx("halfbroken.test", 10, "mx.broken.test");
    zone.servfail.insert("mx.broken.test".into());
    let router = router_with(zone, |_| {}).await;
    let e = router.route("broken.test").await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    let e = router.route("halfbroken.test").await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
}

#[tokio::test]
async fn address_literals_are_never_routed() {
    let router = router_with(Zone::default(), |_| {}).await;
    let e = router.route("[192.0.2.1]").await.unwrap_err();
    assert!(!e.is_temporary());
}

#[tokio::test]
async fn transport_table_then_smarthost() {
    let mut zone = Zone::default();
    zone.a("relay.example.test", "192.0.2.50")
        .a("smart.test", "192.0.2.60");
    let router = router_with(zone, |config| {
        config
            .transport
            .insert("Exact.Example".into(), transport("[192.0.2.10]:2526"));
        config
            .transport
            .insert(".sub.example".into(), transport("relay.example.test:587"));
        config
            .transport
            .insert("deep.sub.example".into(), transport("192.0.2.11"));
        config
            .transport
            .insert("typo.example".into(), transport("nosuch.test"));
        let mut smart = transport("smart.test");
        smart.tls = RelayTls::Verify;
        smart.username = Some("user".into());
        smart.password = Some("secret".into());
        config.smarthost = Some(smart);
    })
    .await;
    let hops = router.route("exact.example").await.unwrap();
    assert_eq!(addrs(&hops), ["192.0.2.10 192.0.2.10:2526"]);
    assert_eq!(hops[0].tls, RelayTls::Encrypt);
    // ".sub.example" covers subdomains at any depth, not the domain itself.
    let hops = router.route("a.b.sub.example").await.unwrap();
    assert_eq!(addrs(&hops), ["relay.example.test 192.0.2.50:587"]);
    let hops = router.route("deep.sub.example").await.unwrap();
    assert_eq!(addrs(&hops), ["192.0.2.11 192.0.2.11:25"]);
    let hops = router.route("sub.example").await.unwrap();
    assert_eq!(addrs(&hops), ["smart.test 192.0.2.60:25"]);
    assert_eq!(hops[0].tls, RelayTls::Verify);
    assert_eq!(hops[0].auth, Some(("user".into(), "secret".into())));
    // The password stays out of debug output.
    assert!(!format!("{:?}", hops[0]).contains("secret"));
    let e = router.route("typo.example").await.unwrap_err();
    assert!(e.is_temporary(), "{e}");
    let hops = router.route("anything.else").await.unwrap();
    assert_eq!(addrs(&hops), ["smart.test 192.0.2.60:25"]);
}

#[tokio::test]
async fn hops_are_capped() {
    let mut zone = Zone::default();
    for i in 0..15u8 {
        let host = format!("mx{i}.many.test");
        zone.mx("many.test", 10, &host)
            .a(&host, &Ipv4Addr::new(192, 0, 2, i).to_string());
    }
    let router = router_with(zone, |_| {}).await;
    let hops = router.route("many.test").await.unwrap();
    assert_eq!(hops.len(), MAX_HOPS);
}

#[test]
fn transport_host_forms() {
    let ip = |s: &str| Target::Ip(s.parse().unwrap());
    let name = |s: &str| Target::Name(s.into());
    let cases = [
        ("mail.example.org:587", (name("mail.example.org"), 587)),
        ("Mail.Example.org", (name("mail.example.org"), 25)),
        ("[192.0.2.1]:2525", (ip("192.0.2.1"), 2525)),
        ("[192.0.2.1]", (ip("192.0.2.1"), 25)),
        ("192.0.2.1:26", (ip("192.0.2.1"), 26)),
        ("192.0.2.1", (ip("192.0.2.1"), 25)),
        ("[2001:db8::1]:587", (ip("2001:db8::1"), 587)),
        ("2001:db8::1", (ip("2001:db8::1"), 25)),
    ];
    for (spec, want) in cases {
        assert_eq!(parse_host(spec).unwrap(), want, "{spec}");
    }
    for bad in [
        "",
        ":25",
        "host:",
        "host:0",
        "host:99999",
        "[192.0.2.1",
        "[nothost]:25",
        "[192.0.2.1]x",
        "bad host",
        "a..b",
    ] {
        assert!(parse_host(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn bad_transport_config_is_refused() {
    let mut config = RelayConfig::default();
    config
        .transport
        .insert("example.org".into(), transport("bad host"));
    assert!(Router::new(&config).unwrap_err().contains("example.org"));
    let mut config = RelayConfig::default();
    let mut half = transport("relay.test");
    half.username = Some("user".into());
    config.smarthost = Some(half);
    assert!(Router::new(&config).unwrap_err().contains("password"));
}

#[tokio::test]
async fn localhost_relay_host_needs_no_dns() {
    let router = router_with(Zone::default(), |config| {
        config.smarthost = Some(transport("localhost:2526"));
    })
    .await;
    let hops = router.route("example.org").await.unwrap();
    assert!(
        addrs(&hops).contains(&"localhost 127.0.0.1:2526".to_string()),
        "{hops:?}"
    );
}
