//! The strategy flags shared by `rr-proxy` and `rr-cluster`: `--strategy` and
//! the settings of the strategies that have some.

use rr_proxy::{CookieName, HashBalance, HashKey, Strategy, StrategyKind, StrategyOptions};

/// `--strategy NAME` and its settings, flattened into a binary's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct StrategyArgs {
    /// How the next backend is chosen: round-robin or least-connections (both
    /// weight-aware; weighted: round-robin under its older name),
    /// sticky-cookie (a cookie keeps each client on one backend) or
    /// consistent-hash (a key, the client's address or a header, picks the
    /// backend, loads bounded).
    #[arg(long, value_name = "NAME", default_value = "round-robin")]
    pub strategy: StrategyKind,

    /// sticky-cookie: the name of the cookie the proxy sets [default: rr_backend].
    #[arg(long, value_name = "NAME")]
    pub sticky_cookie: Option<CookieName>,

    /// consistent-hash: what is hashed, client-ip or header:NAME (a request
    /// without that header is hashed by its client address) [default: client-ip].
    #[arg(long, value_name = "KEY")]
    pub hash_key: Option<HashKey>,

    /// consistent-hash: the bounded-load factor; a backend carrying this many
    /// times its share of the requests in progress is passed over for the
    /// next on the ring. 1 to 100, or 0 for no bound [default: 1.25].
    #[arg(long, value_name = "FACTOR")]
    pub hash_balance: Option<HashBalance>,
}

impl StrategyArgs {
    /// The settings, checked against the strategy and the mode (`tcp`: no
    /// HTTP requests): a setting for another strategy, or sticky-cookie in TCP
    /// mode, is an error for the command line.
    pub fn options(&self, tcp: bool) -> Result<StrategyOptions, String> {
        let kind = self.strategy;
        let misplaced = |flag: &str, wanted: StrategyKind| {
            Err(format!("{flag} applies to --strategy {wanted} only (not {kind})"))
        };
        if self.sticky_cookie.is_some() && kind != StrategyKind::StickyCookie {
            return misplaced("--sticky-cookie", StrategyKind::StickyCookie);
        }
        if kind != StrategyKind::ConsistentHash {
            if self.hash_key.is_some() {
                return misplaced("--hash-key", StrategyKind::ConsistentHash);
            }
            if self.hash_balance.is_some() {
                return misplaced("--hash-balance", StrategyKind::ConsistentHash);
            }
        }
        if tcp && kind.needs_http() {
            return Err(format!(
                "--strategy {kind} needs --mode http (TCP mode has no cookies)"
            ));
        }
        if tcp && matches!(self.hash_key, Some(HashKey::Header(_))) {
            return Err("--hash-key header:NAME needs --mode http (TCP mode has no headers)".to_owned());
        }
        Ok(StrategyOptions {
            sticky_cookie: self.sticky_cookie.clone().unwrap_or_default(),
            hash_key: self.hash_key.clone().unwrap_or_default(),
            hash_balance: self.hash_balance.unwrap_or_default(),
        })
    }

    /// The strategy, built with `options`.
    pub fn build(&self, options: &StrategyOptions) -> Box<dyn Strategy> {
        self.strategy.build_with(options)
    }

    /// The strategy in a few words for the start-up summary: `round-robin`,
    /// `sticky-cookie (cookie rr_backend)`, `consistent-hash (key client-ip,
    /// balance 1.25)`.
    pub fn describe(&self, options: &StrategyOptions) -> String {
        match self.strategy {
            StrategyKind::StickyCookie => format!("sticky-cookie (cookie {})", options.sticky_cookie),
            StrategyKind::ConsistentHash => format!(
                "consistent-hash (key {}, balance {})",
                options.hash_key, options.hash_balance
            ),
            other => other.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        s: StrategyArgs,
    }

    fn parse(args: &[&str]) -> Result<StrategyArgs, String> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .map(|c| c.s)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn settings_belong_to_their_strategy() {
        let s = parse(&["--strategy", "consistent-hash", "--hash-key", "header:X-User"]).unwrap();
        let o = s.options(false).unwrap();
        assert_eq!(
            s.describe(&o),
            "consistent-hash (key header:x-user, balance 1.25)"
        );
        assert!(s.options(true).unwrap_err().contains("--mode http"));
        let s = parse(&["--strategy", "sticky-cookie"]).unwrap();
        assert_eq!(
            s.describe(&s.options(false).unwrap()),
            "sticky-cookie (cookie rr_backend)"
        );
        assert!(s.options(true).is_err());
        let s = parse(&["--hash-balance", "2"]).unwrap();
        assert!(s
            .options(false)
            .unwrap_err()
            .contains("--hash-balance applies to --strategy consistent-hash"));
        let s = parse(&["--strategy", "consistent-hash", "--sticky-cookie", "a"]).unwrap();
        assert!(s.options(false).is_err());
        assert!(parse(&["--hash-key", "cookie:x"])
            .unwrap_err()
            .contains("bad hash key"));
        assert!(parse(&["--sticky-cookie", "a;b"])
            .unwrap_err()
            .contains("bad cookie name"));
        assert!(parse(&["--hash-balance", "0.5"])
            .unwrap_err()
            .contains("bad hash balance"));
        assert_eq!(
            parse(&[]).unwrap().describe(&StrategyOptions::default()),
            "round-robin"
        );
    }
}
