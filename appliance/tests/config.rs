//! Configuration: the shipped examples load, and every bad input gets one line naming the key
//! and the fix.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use saps::config::{Admission, Backend, Config, CongestionAlgorithm, ServiceKind};

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn load_example(name: &str) -> Config {
    Config::load(repo_file(&format!("examples/{name}")))
        .unwrap_or_else(|e| panic!("examples/{name}: {e}"))
}

/// The error for `text`, checked to be one line.
fn err(text: &str) -> String {
    let e = Config::from_toml_str(text).expect_err("config should be rejected");
    let line = e.to_string();
    assert!(!line.contains('\n'), "not one line: {line:?}");
    assert!(!line.is_empty());
    line
}

/// Assert the message starts with the key path and contains every fragment.
fn assert_err(text: &str, key: &str, fragments: &[&str]) {
    let line = err(text);
    assert!(
        line.starts_with(&format!("{key}: ")),
        "expected key {key:?} in {line:?}"
    );
    for f in fragments {
        assert!(line.contains(f), "expected {f:?} in {line:?}");
    }
}

const PORT: &str = r#"
[[port]]
name = "ext"
backend = "memory"
ipv4 = "10.0.0.2/24"
"#;

#[test]
fn example_single_veth() {
    let c = load_example("single-veth.toml");
    assert_eq!(c.ports.len(), 1);
    let p = &c.ports[0];
    assert_eq!(p.backend, Backend::AfPacket);
    assert_eq!(p.iface.as_deref(), Some("saps0"));
    assert_eq!(p.ipv4.addr, Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(p.ipv4.prefix_len, 24);
    assert_eq!(p.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(p.tx_ring, 1024);
    assert_eq!(p.rx_burst, 32);
    assert_eq!(p.admission, Admission::Adaptive);
    let kinds: Vec<ServiceKind> = c.services.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            ServiceKind::Echo,
            ServiceKind::Discard,
            ServiceKind::Source,
            ServiceKind::Http,
            ServiceKind::UdpEcho
        ]
    );
    assert!(c.telemetry.enabled);
    assert_eq!(c.telemetry.listen.to_string(), "127.0.0.1:9100");
    assert_eq!(c.cores, None);
}

#[test]
fn example_tap_demo() {
    let c = load_example("tap-demo.toml");
    assert_eq!(c.ports[0].backend, Backend::Tap);
    assert_eq!(c.ports[0].mac, Some([0x02, 0x5a, 0x50, 0x53, 0x00, 0x01]));
    assert_eq!(c.services.len(), 2);
    assert_eq!(c.telemetry.listen.port(), 9101);
}

#[test]
fn example_gateway() {
    let c = load_example("gateway.toml");
    assert_eq!(c.cores, Some(vec![1]));
    let p = &c.ports[0];
    assert_eq!(p.line_rate_bps, Some(10_000_000_000));
    assert_eq!(p.tx_ring, 2048);
    assert_eq!(p.admission, Admission::Paper);
    assert!(!p.checksum_offload);
    assert_eq!(p.extra_ipv4.len(), 2);
    assert_eq!(p.extra_ipv4[0].prefix_len, 28);
    assert_eq!(p.extra_ipv4[1].prefix_len, 24);
    assert_eq!(c.tcp.congestion, CongestionAlgorithm::Cubic);
    assert_eq!(c.tcp.send_buffer, 4 << 20);
    assert_eq!(c.tcp.time_wait, Duration::from_secs(30));
    assert_eq!(c.tcp.keepalive, Some(Duration::from_secs(120)));
    assert_eq!(c.tcp.syn_backlog, 4096);
    assert_eq!(c.services[0].on.as_deref(), Some("wan"));
}

#[test]
fn defaults_of_an_almost_empty_file() {
    let c = Config::from_toml_str(PORT).unwrap();
    assert_eq!(c.tcp.rto_min, Duration::from_millis(200));
    assert_eq!(c.tcp.delayed_ack, Duration::from_millis(40));
    assert_eq!(c.tcp.time_wait, Duration::from_secs(60));
    assert_eq!(c.tcp.send_buffer, 4 * 1024 * 1024);
    assert!(c.tcp.syn_cookies);
    assert!(!c.tcp.nodelay);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.ports[0].line_rate_bps, None);
    // An empty file is a valid (if useless) configuration.
    assert!(Config::from_toml_str("").unwrap().ports.is_empty());
}

#[test]
fn typo_in_a_port_key() {
    let text = PORT.replace(
        "backend = \"memory\"",
        "backend = \"memory\"\nifcae = \"x\"",
    );
    assert_err(
        &text,
        "port[0].ifcae",
        &[
            "unknown key",
            "did you mean `iface`",
            "valid keys here: name, backend, iface",
        ],
    );
}

#[test]
fn typo_in_a_section_name() {
    assert_err(
        "[telemtry]\nlisten = \"127.0.0.1:1\"\n",
        "telemtry",
        &["did you mean `telemetry`", "cores, port, service"],
    );
    assert_err(
        "[tcp]\ncongestoin = \"cubic\"\n",
        "tcp.congestoin",
        &["did you mean `congestion`"],
    );
    assert_err(
        "[[service]]\nkind = \"echo\"\nport = 7\nbind = \"x\"\n",
        "service[0].bind",
        &["valid keys here: kind, port, on"],
    );
}

#[test]
fn port_as_a_single_table() {
    assert_err("[port]\nname = \"a\"\n", "port", &["[[port]]"]);
}

#[test]
fn wrong_value_type_names_the_key() {
    let text = PORT.replace("ipv4 = ", "tx_ring = \"big\"\nipv4 = ");
    assert_eq!(
        err(&text),
        "port[0].tx_ring: invalid type: string \"big\", expected an integer; see docs/operations.md for the expected type"
    );
}

#[test]
fn syntax_error_has_a_line_number() {
    let line = err("[[port]]\nname = \"a\n");
    assert!(line.contains("TOML syntax error at line 2"), "{line}");
}

#[test]
fn unknown_backend() {
    let text = PORT.replace("\"memory\"", "\"netmap\"");
    assert_err(
        &text,
        "port[0].backend",
        &["\"netmap\"", "\"af_packet\", \"tap\", \"memory\", \"dpdk\""],
    );
}

#[cfg(not(feature = "dpdk"))]
#[test]
fn dpdk_without_the_feature() {
    let text = PORT.replace("\"memory\"", "\"dpdk\"");
    assert_err(
        &text,
        "port[0].backend",
        &["built without the dpdk feature; rebuild with --features dpdk"],
    );
}

#[test]
fn af_packet_needs_an_interface_and_memory_has_none() {
    let text = PORT.replace("\"memory\"", "\"af_packet\"");
    assert_err(&text, "port[0].iface", &["missing", "iface = \"veth0\""]);
    let text = PORT.replace("\"memory\"", "\"memory\"\niface = \"eth0\"");
    assert_err(&text, "port[0].iface", &["remove this key"]);
    let text = PORT.replace("\"memory\"", "\"tap\"\niface = \"../../etc\"");
    assert_err(&text, "port[0].iface", &["not an interface name"]);
}

#[test]
fn bad_cidr() {
    let text = PORT.replace("10.0.0.2/24", "10.0.0.300/24");
    assert_eq!(
        err(&text),
        "port[0].ipv4: \"10.0.0.300/24\" is not an IPv4 CIDR; write it like \"10.0.0.2/24\""
    );
    let text = PORT.replace("10.0.0.2/24", "10.0.0.2");
    assert_err(&text, "port[0].ipv4", &["not an IPv4 CIDR"]);
}

#[test]
fn host_address_must_not_be_network_or_broadcast() {
    let text = PORT.replace("10.0.0.2/24", "10.0.0.0/24");
    assert_err(
        &text,
        "port[0].ipv4",
        &["network address", "between 10.0.0.1 and 10.0.0.254"],
    );
    let text = PORT.replace("10.0.0.2/24", "10.0.0.255/24");
    assert_err(&text, "port[0].ipv4", &["broadcast address"]);
    // /31 point-to-point links have no network or broadcast address.
    assert!(Config::from_toml_str(&PORT.replace("10.0.0.2/24", "10.0.0.0/31")).is_ok());
}

#[test]
fn extra_address_outside_the_subnet() {
    let text = PORT.replace(
        "ipv4 = ",
        "extra_ipv4 = [\"10.0.0.3\", \"10.9.0.3\"]\nipv4 = ",
    );
    assert_err(
        &text,
        "port[0].extra_ipv4[1]",
        &["10.9.0.3 is outside 10.0.0.0/24", "\"10.9.0.3/24\""],
    );
    let text = PORT.replace("ipv4 = ", "extra_ipv4 = [\"10.0.0.2\"]\nipv4 = ");
    assert_err(&text, "port[0].extra_ipv4[0]", &["listed twice"]);
    let text = PORT.replace("ipv4 = ", "extra_ipv4 = [\"10.9.0.3/16\"]\nipv4 = ");
    assert!(Config::from_toml_str(&text).is_ok());
}

#[test]
fn gateway_outside_the_subnet() {
    let text = PORT.replace("ipv4 = ", "gateway = \"10.0.1.1\"\nipv4 = ");
    assert_eq!(
        err(&text),
        "port[0].gateway: 10.0.1.1 is outside 10.0.0.0/24 (the port's ipv4 subnet); use a router address inside it"
    );
    let text = PORT.replace("ipv4 = ", "gateway = \"10.0.0.2\"\nipv4 = ");
    assert_err(&text, "port[0].gateway", &["own"]);
    let text = PORT.replace("ipv4 = ", "gateway = \"router\"\nipv4 = ");
    assert_err(
        &text,
        "port[0].gateway",
        &["not an IPv4 address", "\"10.0.0.1\""],
    );
}

#[test]
fn bad_mac() {
    let text = PORT.replace("ipv4 = ", "mac = \"aa:bb:cc:dd:ee\"\nipv4 = ");
    assert_err(
        &text,
        "port[0].mac",
        &["not a MAC address", "\"02:00:00:00:00:01\""],
    );
    let text = PORT.replace("ipv4 = ", "mac = \"01:00:5e:00:00:01\"\nipv4 = ");
    assert_err(&text, "port[0].mac", &["multicast", "unicast"]);
}

#[test]
fn bad_rate() {
    let text = PORT.replace("ipv4 = ", "line_rate = \"1gigabit\"\nipv4 = ");
    assert_err(&text, "port[0].line_rate", &["not a rate", "\"1gbit\""]);
    let text = PORT.replace("ipv4 = ", "line_rate = 0\nipv4 = ");
    assert_err(&text, "port[0].line_rate", &["out of range"]);
    let text = PORT.replace("ipv4 = ", "line_rate = true\nipv4 = ");
    assert_err(&text, "port[0].line_rate", &["not a rate"]);
    let ok = PORT.replace("ipv4 = ", "line_rate = 200000000\nipv4 = ");
    assert_eq!(
        Config::from_toml_str(&ok).unwrap().ports[0].line_rate_bps,
        Some(200_000_000)
    );
}

#[test]
fn ranges_and_enums() {
    let text = PORT.replace("ipv4 = ", "tx_ring = 8\nipv4 = ");
    assert_err(
        &text,
        "port[0].tx_ring",
        &["out of range", "from 16 to 65536"],
    );
    let text = PORT.replace("ipv4 = ", "admission = \"fair\"\nipv4 = ");
    assert_err(
        &text,
        "port[0].admission",
        &["\"off\", \"paper\", \"adaptive\""],
    );
    assert_err(
        &format!("{PORT}[tcp]\ncongestion = \"vegas\"\n"),
        "tcp.congestion",
        &["\"cubic\", \"newreno\", \"bbr\""],
    );
    assert_err(
        &format!("{PORT}[tcp]\ntime_wait = \"60\"\n"),
        "tcp.time_wait",
        &["not a duration", "\"500ms\""],
    );
    assert_err(
        &format!("{PORT}[tcp]\ndelayed_ack = \"1s\"\n"),
        "tcp.delayed_ack",
        &["out of range"],
    );
    assert_err(
        &format!("{PORT}[tcp]\nsend_buffer = \"lots\"\n"),
        "tcp.send_buffer",
        &["not a size", "\"256KiB\""],
    );
    assert_err(
        &format!("{PORT}[tcp]\nrecv_buffer = 100\n"),
        "tcp.recv_buffer",
        &["from 4KiB to 1GiB"],
    );
    assert_err(
        &format!("{PORT}[log]\nlevel = \"loud=\"\n"),
        "log.level",
        &["\"debug\""],
    );
    assert_err(
        &format!("{PORT}[telemetry]\nlisten = \"localhost:9100\"\n"),
        "telemetry.listen",
        &["\"127.0.0.1:9100\""],
    );
    assert_err("cores = []\n", "cores", &["cores = [1]"]);
    assert_err("cores = [1, 1]\n", "cores[1]", &["twice"]);
    assert_err(
        &format!("{PORT}[[service]]\nkind = \"echo\"\nport = 70000\n"),
        "service[0].port",
        &["1 to 65535"],
    );
    assert_err(
        &format!("{PORT}[[service]]\nkind = \"ftp\"\nport = 21\n"),
        "service[0].kind",
        &["\"udp_echo\""],
    );
}

#[test]
fn service_port_bound_twice() {
    let text = format!(
        "{PORT}[[service]]\nkind = \"echo\"\nport = 7\n[[service]]\nkind = \"udp_echo\"\nport = 7\n[[service]]\nkind = \"discard\"\nport = 7\n"
    );
    assert_err(
        &text,
        "service[2].port",
        &["7/tcp is already used by service[0]"],
    );
    // Same port on different network ports is fine.
    let two_ports = format!(
        "{PORT}{}",
        PORT.replace("\"ext\"", "\"int\"")
            .replace("10.0.0.2", "10.1.0.2")
    );
    let ok = format!("{two_ports}[[service]]\nkind = \"echo\"\nport = 7\non = \"ext\"\n[[service]]\nkind = \"discard\"\nport = 7\non = \"int\"\n");
    assert_eq!(Config::from_toml_str(&ok).unwrap().services.len(), 2);
    // But "all ports" clashes with any specific one.
    let clash = format!("{two_ports}[[service]]\nkind = \"echo\"\nport = 7\non = \"ext\"\n[[service]]\nkind = \"discard\"\nport = 7\n");
    assert_err(&clash, "service[1].port", &["already used by service[0]"]);
}

#[test]
fn service_on_a_missing_port() {
    let text = format!("{PORT}[[service]]\nkind = \"http\"\nport = 80\non = \"wan\"\n");
    assert_eq!(
        err(&text),
        "service[0].on: no port named \"wan\"; use one of: ext"
    );
}

#[test]
fn duplicate_port_names_and_addresses() {
    let text = format!("{PORT}{}", PORT.replace("10.0.0.2", "10.1.0.2"));
    assert_err(
        &text,
        "port[1].name",
        &["\"ext\" is already the name of port[0]", "unique"],
    );
    let text = format!("{PORT}{}", PORT.replace("\"ext\"", "\"int\""));
    assert_err(&text, "port[1].ipv4", &["already an address of port[0]"]);
    assert_err(
        &PORT.replace("\"ext\"", "\"all\""),
        "port[0].name",
        &["reserved"],
    );
    assert_err(
        &PORT.replace("\"ext\"", "\"e x\""),
        "port[0].name",
        &["letters, digits"],
    );
}

#[test]
fn missing_file_names_the_path() {
    let e = Config::load("/nonexistent/saps.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/saps.toml") && e.contains("check the path"),
        "{e}"
    );
}

#[test]
fn environment_check_finds_missing_interface_and_busy_telemetry() {
    let text = PORT.replace(
        "backend = \"memory\"",
        "backend = \"af_packet\"\niface = \"nosuch0\"",
    );
    let c = Config::from_toml_str(&format!("{text}[telemetry]\nenabled = false\n")).unwrap();
    let e = c.check_environment().unwrap_err().to_string();
    assert!(
        e.starts_with("port[0].iface: no network interface named \"nosuch0\""),
        "{e}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let c = Config::from_toml_str(&format!("{PORT}[telemetry]\nlisten = \"{addr}\"\n")).unwrap();
    let e = c.check_environment().unwrap_err().to_string();
    assert!(e.starts_with("telemetry.listen: cannot listen on"), "{e}");
    drop(busy);
    c.check_environment().unwrap();

    let c = Config::from_toml_str("cores = [4095]\n[telemetry]\nenabled = false\n").unwrap();
    let e = c.check_environment().unwrap_err().to_string();
    assert!(
        e.starts_with("cores[0]: core 4095 does not exist") && e.contains("available cores: 0"),
        "{e}"
    );
}

/// docs/operations.md documents exactly the keys the schema accepts: every key in its
/// configuration reference tables exists, and every schema key is documented.
#[test]
fn operations_doc_lists_every_key() {
    let doc = std::fs::read_to_string(repo_file("docs/operations.md")).expect("docs/operations.md");
    let section = doc
        .split("## Configuration reference")
        .nth(1)
        .expect("a '## Configuration reference' section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut documented: Vec<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    documented.sort();
    let mut schema = saps::config::schema_paths();
    schema.sort();
    assert_eq!(documented, schema);
}

mod never_panics {
    use proptest::prelude::*;
    use saps::config::{parse_duration, parse_mac, parse_rate, parse_size, Config};

    proptest! {
        #[test]
        fn arbitrary_text(s in "\\PC{0,200}") {
            if let Err(e) = Config::from_toml_str(&s) {
                prop_assert!(!e.to_string().contains('\n'));
            }
        }

        #[test]
        fn toml_shaped_text(
            key in "[a-z_]{1,12}",
            value in prop_oneof![
                "\"[ -~]{0,20}\"",
                "-?[0-9]{1,25}",
                Just("true".to_string()),
                "\\[\"[0-9./a-z:]{0,20}\"\\]",
            ],
            section in prop_oneof![Just(""), Just("[[port]]\n"), Just("[tcp]\n"), Just("[[service]]\n"), Just("[telemetry]\n")],
        ) {
            let text = format!("{section}{key} = {value}\n");
            if let Err(e) = Config::from_toml_str(&text) {
                prop_assert!(!e.to_string().contains('\n'));
            }
        }

        #[test]
        fn value_parsers(s in "\\PC{0,30}") {
            let _ = parse_rate(&s);
            let _ = parse_size(&s);
            let _ = parse_duration(&s);
            let _ = parse_mac(&s);
        }

        #[test]
        fn number_and_unit(n in "[0-9._]{1,30}", unit in "(|ns|us|ms|s|m|h|bit|kbit|gbit|tbit|KiB|GiB|kB|b)") {
            let s = format!("{n}{unit}");
            let _ = parse_rate(&s);
            let _ = parse_size(&s);
            let _ = parse_duration(&s);
        }
    }
}

#[test]
fn checksum_offload_on_a_software_backend_is_rejected_with_the_fix() {
    let e = saps::config::Config::from_toml_str(
        "[[port]]\nname = \"p\"\nbackend = \"af_packet\"\niface = \"eth0\"\nipv4 = \"10.0.0.2/24\"\nchecksum_offload = true\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("port[0].checksum_offload: backend \"af_packet\" cannot offload"),
        "{e}"
    );
    assert!(e.contains("set it to false"), "{e}");
    assert_eq!(e.lines().count(), 1);
}

#[test]
fn gso_is_for_af_packet_only_and_off_by_default() {
    let port = |backend: &str, extra: &str| {
        format!("[[port]]\nname = \"p\"\nbackend = \"{backend}\"\niface = \"eth0\"\nipv4 = \"10.0.0.2/24\"\n{extra}")
    };
    let on = saps::config::Config::from_toml_str(&port("af_packet", "gso = true\n")).unwrap();
    assert!(on.ports[0].gso);
    let default = saps::config::Config::from_toml_str(&port("af_packet", "")).unwrap();
    assert!(!default.ports[0].gso);
    let e = saps::config::Config::from_toml_str(&port("tap", "gso = true\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("port[0].gso: only the af_packet backend"),
        "{e}"
    );
    assert!(e.contains("set it to false"), "{e}");
    assert_eq!(e.lines().count(), 1);
}

#[test]
fn systemd_unit_example_runs_check_config_and_run() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/saps.service"
    ))
    .expect("examples/saps.service");
    assert!(unit.contains("ExecStartPre=/usr/local/bin/saps check-config /etc/saps/saps.toml"));
    assert!(unit.contains("ExecStart=/usr/local/bin/saps run --config /etc/saps/saps.toml"));
    assert!(unit.contains("KillSignal=SIGTERM"));
}

#[test]
fn admission_latency_defaults_parses_and_is_checked() {
    let cfg = Config::from_toml_str(PORT).unwrap();
    assert_eq!(cfg.ports[0].admission_latency, Duration::from_millis(5));
    let cfg = Config::from_toml_str(&format!("{PORT}admission_latency = \"2ms\"\n")).unwrap();
    assert_eq!(cfg.ports[0].admission_latency, Duration::from_millis(2));
    assert_err(
        &format!("{PORT}admission_latency = \"1s\"\n"),
        "port[0].admission_latency",
        &["out of range"],
    );
    assert_err(
        &format!("{PORT}admission = \"paper\"\nadmission_latency = \"5ms\"\n"),
        "port[0].admission_latency",
        &["only the adaptive policy", "remove this key"],
    );
}
