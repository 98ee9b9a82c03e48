//! Which destinations take each message, when a config has filters,
//! `final` or `fallback` (syslog-ng's `filter()`, `flags(final)` and
//! `flags(fallback)`). Decided once per message, in destination order:
//!
//! 1. A destination takes a message of a source it is fed by when its
//!    filter matches (no filter: every message). A taking destination with
//!    `final = true` ends the walk: later destinations do not see it.
//! 2. A `fallback` destination takes only what no other destination of the
//!    message's source took.
//!
//! Filters read parsed fields: the round's [`Parsed`] view gives each
//! message parsed with its source's `parse` mode (`auto` when the source
//! has none), parsed once for routing, `json` and path templates alike.
//! The result is a bit per destination (at most
//! [`ROUTED_DESTINATIONS_MAX`]); a message no destination takes is dropped
//! on purpose and counted.

use super::parsed::ParsedBatch;
use crate::config::{Config, ROUTED_DESTINATIONS_MAX};
use crate::parse::{Filter, Message};

struct RouteDest {
    /// Per source: it feeds this destination.
    feeds: Vec<bool>,
    filter: Option<Filter>,
    is_final: bool,
    fallback: bool,
}

pub struct Router {
    dests: Vec<RouteDest>,
    any_filter: bool,
}

impl Router {
    /// `None` when the config routes nothing (every destination takes every
    /// message of the sources that feed it).
    pub fn new(config: &Config) -> Option<Router> {
        if !config.is_routed() {
            return None;
        }
        assert!(config.destinations.len() <= ROUTED_DESTINATIONS_MAX);
        let routes = config.routes();
        let dests = config
            .destinations
            .iter()
            .enumerate()
            .map(|(d, cfg)| RouteDest {
                feeds: routes.iter().map(|r| r.contains(&d)).collect(),
                // Validated at load (Config::validate builds every filter).
                filter: cfg.filter.as_ref().and_then(|f| f.build().ok()),
                is_final: cfg.is_final,
                fallback: cfg.fallback,
            })
            .collect::<Vec<_>>();
        Some(Router {
            any_filter: dests.iter().any(|d| d.filter.is_some()),
            dests,
        })
    }

    /// The destinations that take `msg` of `source`, one bit each. Only
    /// filters read `msg`: without any, an unparsed one will do.
    pub fn route(&self, source: usize, msg: &Message<'_>) -> u64 {
        let feeds = |d: &RouteDest| d.feeds.get(source).copied().unwrap_or(false);
        let mut mask = 0u64;
        for (i, d) in self.dests.iter().enumerate() {
            if d.fallback || !feeds(d) {
                continue;
            }
            if d.filter.as_ref().is_none_or(|f| f.matches(msg)) {
                mask |= 1 << i;
                if d.is_final {
                    break;
                }
            }
        }
        if mask == 0 {
            for (i, d) in self.dests.iter().enumerate() {
                if d.fallback && feeds(d) {
                    mask |= 1 << i;
                }
            }
        }
        mask
    }

    /// Appends the destinations of every message of `parsed` to `out`.
    pub fn route_batch(&self, parsed: ParsedBatch<'_, '_>, out: &mut Vec<u64>) {
        let batch = parsed.batch();
        for (i, run) in batch.runs.iter().enumerate() {
            let end = batch
                .runs
                .get(i + 1)
                .map_or(batch.len(), |r| r.first as usize);
            let source = run.conn.source as usize;
            for m in run.first as usize..end {
                let msg = if self.any_filter {
                    parsed.message(source, m)
                } else {
                    Message::unparsed(batch.message(m))
                };
                out.push(self.route(source, &msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse, ParseMode};

    impl Router {
        /// `frame` of source 0 (`parse = "auto"`), parsed as a round would.
        fn route_frame(&self, frame: &[u8]) -> u64 {
            self.route(0, &parse(frame, ParseMode::Auto))
        }
    }

    fn router(dests: &str) -> Router {
        let text = format!(
            "[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\nparse = \"auto\"\n{dests}"
        );
        let c = Config::from_toml(
            &text,
            std::path::Path::new("t"),
            std::path::Path::new("/tmp"),
        )
        .expect("config");
        Router::new(&c).expect("routed")
    }

    const AUTH: &[u8] = b"<38>1 2026-11-29T00:00:00Z web1 sshd 1 - - login failed";
    const CRON: &[u8] = b"<78>Nov 29 00:00:00 db2 cron[7]: run";
    const DEBUG: &[u8] = b"<15>1 2026-11-29T00:00:00Z web1 app 1 - - noise";

    #[test]
    fn final_keeps_auth_out_of_the_general_file_and_fallback_takes_the_rest() {
        let r = router(
            "[[destination]]\nname = \"auth\"\ntype = \"file\"\npath = \"a\"\n\
             filter = { facility = [\"auth\", \"authpriv\"] }\nfinal = true\n\
             [[destination]]\nname = \"web\"\ntype = \"file\"\npath = \"w\"\n\
             filter = { host = \"web*\", severity = \"info\" }\n\
             [[destination]]\nname = \"rest\"\ntype = \"file\"\npath = \"r\"\nfallback = true\n",
        );
        assert_eq!(r.route_frame(AUTH), 0b001, "auth only: final");
        assert_eq!(r.route_frame(CRON), 0b100, "nobody took it: fallback");
        assert_eq!(r.route_frame(DEBUG), 0b100, "debug is below info: fallback");
        assert_eq!(r.route_frame(b"garbage"), 0b100, "unparsed: fallback");
    }

    #[test]
    fn without_final_a_message_goes_to_every_matching_destination() {
        let r = router(
            "[[destination]]\nname = \"auth\"\ntype = \"file\"\npath = \"a\"\n\
             filter = { facility = \"auth\" }\n\
             [[destination]]\nname = \"all\"\ntype = \"file\"\npath = \"x\"\n",
        );
        assert_eq!(r.route_frame(AUTH), 0b11);
        assert_eq!(r.route_frame(CRON), 0b10);
    }

    #[test]
    fn a_fallback_with_a_filter_is_refused_with_the_key() {
        let text = "[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
                    [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x\"\nfallback = true\n\
                    filter = { app = \"x\" }\n";
        let e = Config::from_toml(
            text,
            std::path::Path::new("t"),
            std::path::Path::new("/tmp"),
        )
        .unwrap_err();
        assert_eq!(e.key, "destination[0].fallback");
        let text = "[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
                    [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x\"\n\
                    filter = { severity = \"loud\" }\n";
        let e = Config::from_toml(
            text,
            std::path::Path::new("t"),
            std::path::Path::new("/tmp"),
        )
        .unwrap_err();
        assert_eq!(e.key, "destination[0].filter");
        assert!(e.reason.contains("unknown severity"), "{}", e.reason);
    }
}
