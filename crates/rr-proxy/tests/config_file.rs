//! The configuration file: the README's example passes, and each kind of
//! mistake is refused with the file, line, column and key in the message.

use std::net::SocketAddr;

use rr_proxy::config_file::HostMatch;
use rr_proxy::{BackendSource, ConfigError, Mode, ProxyConfig, StrategyKind};

const EXAMPLE: &str = include_str!("../../../examples/rr-proxy.toml");

#[test]
fn the_example_file_is_valid() {
    let c = ProxyConfig::from_toml_str(EXAMPLE, "rr-proxy.toml").unwrap();
    assert_eq!(c.listen, "127.0.0.1:44444".parse::<SocketAddr>().unwrap());
    assert_eq!(c.admin, Some("127.0.0.1:44445".parse().unwrap()));
    assert_eq!(c.mode, Mode::Http);
    assert_eq!(c.max_connections, Some(10000));
    let names: Vec<&str> = c.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "api", "discovered"]);
    let web = &c.pools[0];
    assert_eq!(web.strategy, StrategyKind::RoundRobin);
    assert!(matches!(web.backends[1], BackendSource::Static(s) if s.weight == 2));
    assert_eq!(web.health.as_ref().map(|h| h.path.as_str()), Some("/page.html"));
    assert_eq!(c.pools[1].strategy, StrategyKind::ConsistentHash);
    assert_eq!(c.pools[1].options.hash_key.to_string(), "header:x-user");
    assert!(c.pools[1].health.is_none());
    assert!(c.pools[2].backends.iter().all(BackendSource::is_discovered));
    assert_eq!(c.routes.len(), 3);
    assert_eq!(c.routes[0].host, Some(HostMatch::Exact("api.example".into())));
    assert_eq!(c.routes[0].path.as_deref(), Some("/v1/"));
    assert_eq!(c.routes[0].pool, 1);
    assert_eq!(c.routes[1].host, Some(HostMatch::Suffix("apps.example".into())));
    assert_eq!(
        (
            c.routes[2].host.as_ref(),
            c.routes[2].path.as_ref(),
            c.routes[2].pool
        ),
        (None, None, 0)
    );
}

#[test]
fn the_smallest_file_takes_the_flags_defaults() {
    let c =
        ProxyConfig::from_toml_str("[[pool]]\nname = \"a\"\nbackends = [\"127.0.0.1:1\"]\n", "f").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:44444");
    assert_eq!(c.admin, None);
    assert_eq!(c.pools[0].max_attempts, 3);
    assert_eq!(c.pools[0].timeouts, rr_proxy::Timeouts::default());
    assert!(c.routes.is_empty());
}

const POOL: &str = "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\"]\n";

/// (file text, expected `FILE:LINE:COL: KEY: ` start, a part of the message)
fn bad_files() -> Vec<(String, &'static str, &'static str)> {
    vec![
        (format!("listen = \"127.0.0.1:1\"\nlisen = \"x\"\n{POOL}"), "bad.toml:2:1: lisen: ", "unknown field `lisen`"),
        (format!("{POOL}colour = \"red\"\n"), "bad.toml:4:1: pool[0].colour: ", "unknown field `colour`"),
        (format!("listen = 8080\n{POOL}"), "bad.toml:1:10: listen: ", "invalid type: integer `8080`, expected a string"),
        (format!("{POOL}max_attempts = \"3\"\n"), "bad.toml:4:16: pool[0].max_attempts: ", "invalid type: string"),
        (format!("{POOL}{POOL}"), "bad.toml:5:8: pool[1].name: ", "duplicate pool name \"web\" (first at line 2)"),
        (
            format!("{POOL}[[route]]\npath = \"/api/\"\npool = \"wbe\"\n"),
            "bad.toml:6:8: route[0].pool: ",
            "unknown pool \"wbe\" (pools: web)",
        ),
        (
            format!("{POOL}[[route]]\nhost = \"*.example.com\"\npath = \"/api\"\npool = \"web\"\n[[route]]\nhost = \"a.example.com\"\npath = \"/api/v1\"\npool = \"web\"\n"),
            "bad.toml:8:1: route[1]: ",
            "unreachable: route[0] (line 4) matches every request this one does",
        ),
        (
            format!("{POOL}[[route]]\npool = \"web\"\n[[route]]\nhost = \"a.example\"\npool = \"web\"\n"),
            "bad.toml:6:1: route[1]: ",
            "unreachable: route[0] (line 4)",
        ),
        (
            "[[pool]]\nname = \"web\"\nbackends = [\n  \"127.0.0.1:9002\",\n  \"localhost:9003\",\n]\n".to_owned(),
            "bad.toml:5:3: pool[0].backends: ",
            "bad backend address \"localhost:9003\": expected IP:PORT (a host name is written dns:NAME:PORT in the file)",
        ),
        (
            "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002=0\"]\n".to_owned(),
            "bad.toml:3:13: pool[0].backends: ",
            "bad backend weight \"0\"",
        ),
        (
            "[[pool]]\nname = \"web\"\nbackends = [\"127.0.0.1:9002\", \"127.0.0.1:9002=2\"]\n".to_owned(),
            "bad.toml:3:31: pool[0].backends: ",
            "listed twice",
        ),
        (
            format!("{POOL}hash_key = \"client-ip\"\n"),
            "bad.toml:4:12: pool[0].hash_key: ",
            "applies to strategy consistent-hash only (not round-robin)",
        ),
        (
            format!("{POOL}strategy = \"consistent-hash\"\nhash_balance = 0.5\n"),
            "bad.toml:5:16: pool[0].hash_balance: ",
            "bad hash balance",
        ),
        (format!("{POOL}strategy = \"random\"\n"), "bad.toml:4:12: pool[0].strategy: ", "unknown strategy \"random\""),
        (
            format!("mode = \"tcp\"\n{POOL}strategy = \"sticky-cookie\"\n"),
            "bad.toml:5:12: pool[0].strategy: ",
            "sticky-cookie needs mode http",
        ),
        ("listen = \"127.0.0.1:1\"\n".to_owned(), "bad.toml:1:1: pool: ", "no pools"),
        ("[[pool]]\nname = \"web\"\nbackends = []\n".to_owned(), "bad.toml:3:12: pool[0].backends: ", "no backends"),
        ("[[pool]]\nname = \"web\"\n".to_owned(), "bad.toml:1:1: pool[0]: ", "missing field `backends`"),
        (format!("admin = \"127.0.0.1\"\n{POOL}"), "bad.toml:1:9: admin: ", "bad address \"127.0.0.1\""),
        (format!("{POOL}connect_timeout = \"3 parsecs\"\n"), "bad.toml:4:19: pool[0].connect_timeout: ", "bad duration"),
        (format!("{POOL}[pool.health]\nexpect = \"500-200\"\n"), "bad.toml:5:10: pool[0].health.expect: ", "bad status range"),
        (format!("{POOL}[pool.health]\nintervl = \"1s\"\n"), "bad.toml:5:1: pool[0].health.intervl: ", "unknown field `intervl`"),
        (format!("{POOL}[[route]]\nhost = \"a.example:80\"\npool = \"web\"\n"), "bad.toml:5:8: route[0].host: ", "bad host"),
        (format!("{POOL}[[route]]\npath = \"api\"\npool = \"web\"\n"), "bad.toml:5:8: route[0].path: ", "bad path prefix"),
        (format!("threads = 0\n{POOL}"), "bad.toml:1:11: threads: ", "out of range"),
        (format!("admin_tls = true\n{POOL}"), "bad.toml:1:13: admin_tls: ", "needs `admin`"),
        (format!("mode = \"tcp\"\nh2c = true\n{POOL}"), "bad.toml:2:7: h2c: ", "needs mode http"),
        (format!("h2c = \"yes\"\n{POOL}"), "bad.toml:1:7: h2c: ", "invalid type"),
        (
            format!("listen = \":0\"\nadmin_token = \"t\"\n{POOL}"),
            "bad.toml:2:15: admin_token: ",
            "needs `admin`",
        ),
        ("listen = \n".to_owned(), "bad.toml:1:10: listen: ", "string values must be quoted"),
    ]
}

#[test]
fn bad_files_name_the_line_and_the_key() {
    for (text, place, message) in bad_files() {
        let err = ProxyConfig::from_toml_str(&text, "bad.toml").expect_err(&text);
        let shown = err.to_string();
        assert!(
            shown.starts_with(place),
            "want {place:?}, got {shown:?}\n--- file:\n{text}"
        );
        assert!(
            shown.contains(message),
            "want {message:?} in {shown:?}\n--- file:\n{text}"
        );
        assert!(!shown.contains('\n'), "one line: {shown:?}");
        assert!(matches!(err, ConfigError::At { .. }));
    }
}

#[test]
fn load_names_a_missing_file_and_resolves_relative_paths() {
    let err = ProxyConfig::load(std::path::Path::new("/nonexistent/rr.toml")).unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/rr.toml: cannot read: "),
        "{err}"
    );
    let dir = test_support::TempDir::new("config-file");
    let path = dir.path().join("p.toml");
    std::fs::write(
        &path,
        format!("admin = \"127.0.0.1:0\"\nadmin_token = \"t\"\n[tls]\n[[tls.pair]]\ncert = \"c.pem\"\nkey = \"/abs/k.pem\"\n{POOL}"),
    )
    .unwrap();
    let c = ProxyConfig::load(&path).unwrap();
    assert_eq!(c.admin_token, Some(dir.path().join("t")));
    let tls = c.tls.unwrap();
    assert_eq!(tls.pairs, [(dir.path().join("c.pem"), "/abs/k.pem".into())]);
}
