//! The documented option table: every key of the config file, its default
//! and its meaning. `ringest options` prints it as the README's Markdown
//! table; tests check it against the structs and against the README.

#[cfg(test)]
use super::{Config, DestinationConfig, SourceConfig, StatsConfig};

/// (key, default as written in TOML, meaning). Keys of tables are prefixed
/// with the table: `source.`, `source.tls.`, `destination.`, `stats.`.
#[rustfmt::skip]
pub const OPTIONS: &[(&str, &str, &str)] = &[
    ("shards",                   "0 = one per core", "shard threads, each with its own io_uring and listeners"),
    ("ring_capacity_batches",    "64",         "batches a shard may queue for the writer before it stops reading (back-pressure)"),
    ("writers",                  "0 = auto",   "writer threads per destination group (sources that share no destination have separate rings and writers, so a stuck destination pauses only its own sources); shard i's batches go to writer i % writers, so a connection's lines keep their order; each writer has its own file descriptors (whole batches per write) and upstream connections. auto: 1 when every destination of the group is one file (writers of one file take turns on it), else one per shard. A group with a kafka destination always has 1 (one producer per kafka destination)"),
    ("max_queue_delay_ms",       "2",          "a shard stops handing batches to its writer (and pauses the connections feeding it) once the writer's queue would take longer than this to drain (fixed cost per round plus bytes at the rate fitted on its recent rounds); 0 = bounded by ring_capacity_batches only"),
    ("batch_max_bytes",          "262144",     "a shard hands its batch to the writer at this size (or at the end of a loop turn)"),
    ("recv_buffer_bytes",        "131072",     "size of one provided receive buffer; a TLS record cut across two is copied to be put back together, so buffers well above the record size (16 KiB) copy less; the shard's buffers take recv_buffers_per_shard × this"),
    ("recv_buffers_per_shard",   "512",        "provided receive buffers per shard (power of two)"),
    ("uring_entries",            "1024",       "io_uring submission queue entries per shard"),
    ("recv_batch_wait_us",       "250",        "a shard with receive completions waiting waits up to this long for more (64 at most) before a loop turn, so at moderate load a turn, and the batch it hands to the writer, carries many receives; a frame waits at most this long before its turn; needs Linux 6.12+ (io_uring minimum wait), else and with 0 a turn per completion"),
    ("drain_timeout_ms",         "5000",       "on SIGTERM, how long open connections may keep sending before they are closed"),
    ("log_format",               "\"text\"",   "ringest's own log lines on stderr: \"text\" (LEVEL message) or \"json\" (one object per line: time, level, message, and peer, client, source, destination, reason, hint when the line names them)"),
    ("source.name",              "required",   "name used in stats labels and JSON output"),
    ("source.listen",            "required",   "IPv4 or IPv6 address:port"),
    ("source.transport",         "required",   "\"tls\" or \"tcp\""),
    ("source.framing",           "\"auto\"",   "\"octet-counted\" (RFC 5425/6587), \"newline\", or \"auto\" (first byte a digit: octet-counted)"),
    ("source.max_message_bytes", "65536",      "longest message kept"),
    ("source.oversize",          "\"truncate\"", "longer messages: \"truncate\" to max_message_bytes or \"drop\"; the stream resynchronises either way"),
    ("source.max_connections",   "10000",      "open connections on this source over all shards; more are closed at once and counted"),
    ("source.handshake_timeout_ms", "10000",   "a TLS handshake not finished by then is closed (reason handshake_timeout)"),
    ("source.listen_backlog",    "1024",       "listen() backlog per shard (capped by net.core.somaxconn)"),
    ("source.keepalive_idle_ms", "60000",      "TCP keepalive idle time, so half-open connections are found; 0 = off"),
    ("source.max_connections_per_ip", "0",     "open connections from one IP address on this source over all shards; more are closed at once and counted (ringest_connections_refused_total{limit=\"max_connections_per_ip\"}); 0 = no limit"),
    ("source.idle_timeout_ms",   "0",          "an established connection that sends nothing for this long is closed (reason idle_timeout); 0 = never, since syslog senders idle for long"),
    ("source.max_send_queue_bytes", "262144",  "bytes queued to send on one connection (handshake, alerts, KeyUpdate answers); a peer that never reads is closed past it (reason send_queue_full)"),
    ("source.tcp_user_timeout_ms", "60000",    "TCP_USER_TIMEOUT: data we sent that stays unacknowledged this long drops the connection; 0 = kernel default"),
    ("source.close_timeout_ms",  "5000",       "a connection being closed gets this long to send its last bytes (an alert, close_notify) before it is cut"),
    ("source.ktls",              "\"auto\"",   "kernel TLS offload: \"auto\" (what this kernel keeps safe), \"on\" (fail start-up without kTLS), \"off\""),
    ("source.parse",             "\"none\"",   "\"auto\" (RFC 5424 or RFC 3164, per message), \"rfc5424\", \"rfc3164\" or \"none\": the fields a json destination writes; a message matching neither is kept whole with parse_error and counted once in ringest_parse_errors_total{source,reason} (also when only a filter, a path template or a kafka host key parsed it)"),
    ("source.parse_error_log_interval_ms", "60000", "a message that fails to parse (parse, or a filter, path template or kafka key reading it) is logged with its peer, the reason and a hint once per (peer, reason), then not again for this long (each one is still counted); 0 = every one, within 10 lines per second per writer"),
    ("source.destinations",      "all",        "names of the destinations this source feeds"),
    ("destination.name",         "required",   "name referred to by source.destinations"),
    ("destination.type",         "required",   "\"file\", \"forward\" (syslog over TLS or TCP to upstream servers) or \"kafka\" (a build with the cargo feature kafka, as the .deb is)"),
    ("destination.path",         "required for file", "output file, appended to; relative to the config file's folder. A template with {host}, {app}, {facility}, {severity}, {source}, {peer}, {year}, {month}, {day}, {hour} writes one file per value (folders created; each value made one safe file-name component, a missing one is @unknown; see writer/template.rs)"),
    ("destination.format",       "\"raw\"",    "\"raw\": the message and a newline; \"json\": one object per line with peer and client identity"),
    ("destination.fsync",        "\"batch\"",  "\"never\", \"batch\" (fdatasync after every write round), \"interval\""),
    ("destination.fsync_interval_ms", "1000",  "with fsync = \"interval\""),
    ("destination.io",           "\"direct\"", "\"direct\" (the default, chosen by measurement: see the README's Performance section; O_DIRECT for whole blocks past the end of the file, the partial blocks before and after them buffered, so the file size is exact and tail -f sees every line; falls back to buffered, logged once and counted in ringest_direct_io_fallbacks_total, where the file system refuses O_DIRECT; rotate by rename + SIGHUP, not copytruncate) or \"buffered\" (writev, O_APPEND, page cache)"),
    ("destination.direct_buffer_bytes", "4194304", "with io = \"direct\": the most one O_DIRECT write moves; each writer thread has one aligned buffer of the largest such size, in huge pages where the kernel gives them (65536..=67108864, a multiple of 4096)"),
    ("destination.include_raw",  "false",      "with format = \"json\" and a parsing source: the whole frame as \"raw\" too"),
    ("destination.filter",       "none",       "{ severity = \"warning\" (that level and more severe), facility = [..], host = [globs], app = [globs] }: every given field must match; messages are parsed for it (source.parse, or auto)"),
    ("destination.final",        "false",      "a message this destination takes is not offered to later destinations (in file order)"),
    ("destination.fallback",     "false",      "takes only the messages no other destination of their source took"),
    ("destination.date_from",    "\"received\"", "with a path template: {year}..{hour} from the receive time (UTC) or \"message\" (the message's own timestamp when it has one, in UTC when it has an offset; else the receive time)"),
    ("destination.max_open_files", "64",       "with a path template: files held open at once by each writer (so up to writers × this in all); the least recently used is closed (after its fsync) to open another"),
    ("destination.servers",      "required for forward", "[\"host:port\", ..] upstream servers in failover order; names resolved at each connect; IPv6 as [addr]:port"),
    ("destination.transport",    "\"tls\"",    "forward: \"tls\" (needs [destination.tls]) or \"tcp\""),
    ("destination.framing",      "\"octet-counted\"", "forward: \"octet-counted\" (RFC 5425 LEN SP MSG) or \"newline\""),
    ("destination.connections",  "1",          "forward: upstream connections per writer thread; all messages of one source connection use the same one"),
    ("destination.reconnect_min_ms", "100",    "forward: first wait before reconnecting after a failure"),
    ("destination.reconnect_max_ms", "10000",  "forward: the wait doubles (with jitter) up to this cap"),
    ("destination.connect_timeout_ms", "5000", "forward: TCP connect plus TLS handshake, per server tried"),
    ("destination.confirm_ms",   "1000",       "forward, TLS 1.3: messages written on a new connection are kept for a resend until the server sends a record (a session ticket) or this long passes without an alert; 0 = trust the handshake"),
    ("destination.disk_buffer.dir", "none = no disk buffer", "forward: folder of segment files keeping, in order, what the upstream cannot take now; replayed in order when it is back, also after a restart (needs connections = 1)"),
    ("destination.disk_buffer.max_bytes", "1073741824", "forward: segment bytes at most; then when_full applies"),
    ("destination.disk_buffer.when_full", "\"block\"", "forward: \"block\" (back-pressure, nothing dropped) or \"drop_newest\" (new messages dropped, counted in ringest_disk_buffer_dropped_total)"),
    ("destination.forward_identity", "false",  "forward: add [tls@32473 cn=\"..\" fp=\"..\"] (the original client's TLS identity) to RFC 5424 messages; others are sent unchanged"),
    ("destination.ktls",         "\"auto\"",   "forward, TLS: kernel TLS for the upstream connection after its handshake: \"auto\" (what this kernel keeps safe, else userspace rustls, logged once and counted), \"on\" (fail start-up without kTLS), \"off\""),
    ("destination.brokers",      "required (kafka)", "kafka: bootstrap brokers, [\"host:port\", ...]"),
    ("destination.topic",        "required (kafka)", "kafka: the topic; the message value is the frame (raw) or its JSON object, without the newline"),
    ("destination.key",          "\"none\"",   "kafka: the message key, so one sender's messages stay in one partition, in order: \"none\", \"peer\" (sender IP) or \"host\" (syslog HOSTNAME as source.parse reads it, \"none\" read as auto; else sender IP)"),
    ("destination.acks",         "\"all\"",    "kafka: \"all\" (every in-sync replica, idempotent producer: no duplicates from retries) or \"1\" (leader only)"),
    ("destination.compression",  "\"none\"",   "kafka: \"none\", \"lz4\" or \"zstd\""),
    ("destination.linger_ms",    "5",          "kafka: how long the producer waits to fill a batch"),
    ("destination.batch_bytes",  "1000000",    "kafka: largest batch the producer sends to a partition"),
    ("destination.producer_queue_max_bytes", "16777216", "kafka: bytes the producer holds undelivered (queued and in flight); when full the writer waits, the rings fill and sources stop reading"),
    ("destination.delivery_stall_ms", "10000", "kafka: a producer holding messages that gets no delivery report for this long while the brokers answer (a metadata request) is stalled: logged once with the reason and counted in ringest_producer_stalls_total; its messages stay kept"),
    ("destination.properties",   "none",       "kafka: a table of further librdkafka properties, passed through (not those set by the keys above, nor message.timeout.ms: ringest never lets the producer drop)"),
    ("stats.listen",             "none",       "address of the Prometheus endpoint, GET /metrics"),
];

/// Every key: the table above plus the `[source.tls]` keys from the TLS
/// module and the kafka destination's `[destination.tls]` keys.
pub fn all_options() -> Vec<(String, &'static str, &'static str)> {
    let mut rows: Vec<_> = OPTIONS
        .iter()
        .map(|(k, d, m)| (k.to_string(), *d, *m))
        .collect();
    rows.extend(
        crate::tls::OPTIONS
            .iter()
            .map(|(k, d, m)| (format!("source.tls.{k}"), *d, *m)),
    );
    rows.extend(
        crate::tls::CLIENT_OPTIONS
            .iter()
            .map(|(k, d, m)| (format!("destination.tls.{k}"), *d, *m)),
    );
    rows
}

/// The README's option table, in Markdown.
pub fn markdown_table() -> String {
    let mut out = String::from("| key | default | meaning |\n|---|---|---|\n");
    for (k, d, m) in all_options() {
        out.push_str(&format!(
            "| `{k}` | {} | {} |\n",
            d.replace('|', "\\|"),
            m.replace('|', "\\|")
        ));
    }
    out
}

/// Field names of the structs, written out by destructuring so that adding a
/// field without documenting it fails to compile here or fails the test.
#[cfg(test)]
fn struct_keys() -> Vec<String> {
    let Config {
        shards: _,
        ring_capacity_batches: _,
        writers: _,
        max_queue_delay_ms: _,
        batch_max_bytes: _,
        recv_buffer_bytes: _,
        recv_buffers_per_shard: _,
        uring_entries: _,
        recv_batch_wait_us: _,
        drain_timeout_ms: _,
        log_format: _,
        sources: _,
        destinations: _,
        stats: _,
    } = example();
    let top = [
        "shards",
        "ring_capacity_batches",
        "writers",
        "max_queue_delay_ms",
        "batch_max_bytes",
        "recv_buffer_bytes",
        "recv_buffers_per_shard",
        "uring_entries",
        "recv_batch_wait_us",
        "drain_timeout_ms",
        "log_format",
    ];
    let source = |s: &SourceConfig| {
        let SourceConfig {
            name: _,
            listen: _,
            transport: _,
            framing: _,
            max_message_bytes: _,
            oversize: _,
            max_connections: _,
            handshake_timeout_ms: _,
            listen_backlog: _,
            keepalive_idle_ms: _,
            max_connections_per_ip: _,
            idle_timeout_ms: _,
            max_send_queue_bytes: _,
            tcp_user_timeout_ms: _,
            close_timeout_ms: _,
            ktls: _,
            parse: _,
            parse_error_log_interval_ms: _,
            destinations: _,
            tls: _,
        } = s;
        [
            "name",
            "listen",
            "transport",
            "framing",
            "max_message_bytes",
            "oversize",
            "max_connections",
            "handshake_timeout_ms",
            "listen_backlog",
            "keepalive_idle_ms",
            "max_connections_per_ip",
            "idle_timeout_ms",
            "max_send_queue_bytes",
            "tcp_user_timeout_ms",
            "close_timeout_ms",
            "ktls",
            "parse",
            "parse_error_log_interval_ms",
            "destinations",
        ]
    };
    let dest = |d: &DestinationConfig| {
        let DestinationConfig {
            name: _,
            kind: _,
            path: _,
            format: _,
            fsync: _,
            fsync_interval_ms: _,
            io: _,
            direct_buffer_bytes: _,
            include_raw: _,
            filter: _,
            is_final: _,
            fallback: _,
            date_from: _,
            max_open_files: _,
            servers: _,
            transport: _,
            framing: _,
            connections: _,
            reconnect_min_ms: _,
            reconnect_max_ms: _,
            connect_timeout_ms: _,
            confirm_ms: _,
            forward_identity: _,
            ktls: _,
            tls: _,
            disk_buffer: _,
            brokers: _,
            topic: _,
            key: _,
            acks: _,
            compression: _,
            linger_ms: _,
            batch_bytes: _,
            producer_queue_max_bytes: _,
            delivery_stall_ms: _,
            properties: _,
        } = d;
        // The table's keys, written out so a new field fails to compile here.
        let super::DiskBufferConfig {
            dir: _,
            max_bytes: _,
            when_full: _,
        } = super::DiskBufferConfig {
            dir: Default::default(),
            max_bytes: 0,
            when_full: Default::default(),
        };
        [
            "name",
            "type",
            "path",
            "format",
            "fsync",
            "fsync_interval_ms",
            "io",
            "direct_buffer_bytes",
            "include_raw",
            "filter",
            "final",
            "fallback",
            "date_from",
            "max_open_files",
            "servers",
            "transport",
            "framing",
            "connections",
            "reconnect_min_ms",
            "reconnect_max_ms",
            "connect_timeout_ms",
            "confirm_ms",
            "disk_buffer.dir",
            "disk_buffer.max_bytes",
            "disk_buffer.when_full",
            "forward_identity",
            "ktls",
            "brokers",
            "topic",
            "key",
            "acks",
            "compression",
            "linger_ms",
            "batch_bytes",
            "producer_queue_max_bytes",
            "delivery_stall_ms",
            "properties",
        ]
    };
    let stats = |s: &StatsConfig| {
        let StatsConfig { listen: _ } = s;
        ["listen"]
    };
    let cfg = example();
    let mut keys: Vec<String> = top.iter().map(|k| k.to_string()).collect();
    keys.extend(
        source(&cfg.sources[0])
            .iter()
            .map(|k| format!("source.{k}")),
    );
    keys.extend(
        dest(&cfg.destinations[0])
            .iter()
            .map(|k| format!("destination.{k}")),
    );
    keys.extend(stats(&cfg.stats).iter().map(|k| format!("stats.{k}")));
    keys
}

#[cfg(test)]
fn example() -> Config {
    let text = "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n[[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x\"\n";
    Config::from_toml(
        text,
        std::path::Path::new("t.toml"),
        std::path::Path::new("/tmp"),
    )
    .expect("example config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_table_lists_exactly_the_struct_fields() {
        let documented: Vec<&str> = OPTIONS.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(documented, struct_keys());
    }

    #[test]
    fn every_documented_key_is_accepted_by_the_parser() {
        // deny_unknown_fields turns a documented key that the parser lacks into an error.
        for (key, _, _) in OPTIONS {
            let (table, field) = match key.split_once('.') {
                Some((t, f)) => (Some(t), f),
                None => (None, *key),
            };
            let value = match field {
                "listen" if table == Some("stats") => "\"127.0.0.1:2\"",
                "name" | "transport" | "listen" | "type" | "path" | "servers" => continue,
                "connections" => "2",
                "reconnect_min_ms" | "confirm_ms" => "100",
                "framing" if table == Some("destination") => "\"newline\"",
                "forward_identity" => "true",
                "disk_buffer.dir" => "\"buf\"",
                "disk_buffer.max_bytes" => "1048576",
                "disk_buffer.when_full" => "\"drop_newest\"",
                "framing" => "\"newline\"",
                "oversize" => "\"drop\"",
                "ktls" => "\"off\"",
                "parse" => "\"auto\"",
                "include_raw" => "true",
                "filter" => "{ severity = \"warning\", host = \"web-*\" }",
                "final" | "fallback" => "true",
                "date_from" => "\"message\"",
                "destinations" => "[\"d\"]",
                // Kafka-only keys: checked with a kafka destination in config/kafka.rs.
                "brokers" | "topic" | "properties" => continue,
                "key" => "\"peer\"",
                "acks" => "\"1\"",
                "compression" => "\"zstd\"",
                "format" | "log_format" => "\"json\"",
                "fsync" => "\"never\"",
                "io" => "\"direct\"",
                "direct_buffer_bytes" => "65536",
                "shards" | "writers" => "1",
                "recv_buffers_per_shard" => "1024",
                "max_send_queue_bytes" => "65536",
                _ => "5000",
            };
            let mut top = String::new();
            let mut src = String::new();
            let mut dst = String::new();
            let mut stats = String::new();
            let line = format!("{field} = {value}\n");
            match table {
                None => top = line,
                Some("source") => src = line,
                Some("destination") => dst = line,
                Some("stats") => stats = line,
                Some(other) => panic!("unexpected table {other}"),
            }
            // Forward-only keys go on a forward destination (a file one refuses them).
            let forward = [
                "connections",
                "reconnect_min_ms",
                "reconnect_max_ms",
                "connect_timeout_ms",
                "confirm_ms",
                "forward_identity",
                "framing",
                "disk_buffer.dir",
                "disk_buffer.max_bytes",
                "disk_buffer.when_full",
            ];
            let dest_head = if table == Some("destination") && forward.contains(&field) {
                let dir = if field.starts_with("disk_buffer.") && field != "disk_buffer.dir" {
                    "disk_buffer.dir = \"buf\"\n"
                } else {
                    ""
                };
                format!(
                    "type = \"forward\"\nservers = [\"127.0.0.1:1\"]\ntransport = \"tcp\"\n{dir}"
                )
            } else {
                "type = \"file\"\npath = \"x\"\n".to_string()
            };
            let text = format!(
                "{top}[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n{src}[[destination]]\nname = \"d\"\n{dest_head}{dst}[stats]\n{stats}"
            );
            if let Err(e) = Config::from_toml(
                &text,
                std::path::Path::new("t.toml"),
                std::path::Path::new("/tmp"),
            ) {
                panic!("documented key {key} rejected: {e}");
            }
        }
    }

    /// The documented default of every option that has a literal one is the
    /// default the parser applies: setting the key to its documented default
    /// changes nothing. (Defaults live in `defaults` in config/mod.rs; this
    /// table only describes them, and this test keeps the two in step.)
    #[test]
    fn documented_defaults_are_the_parsers_defaults() {
        let base = |top: &str, src: &str, tls: &str, dst: &str| {
            format!(
                "{top}[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tls\"\n{src}\
                 [source.tls]\ncert_file = \"c\"\nkey_file = \"k\"\nca_file = \"ca\"\n{tls}\
                 [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x\"\n{dst}"
            )
        };
        let parse = |text: &str| {
            Config::from_toml(
                text,
                std::path::Path::new("t.toml"),
                std::path::Path::new("/tmp"),
            )
            .map(|c| format!("{c:?}"))
        };
        let reference = parse(&base("", "", "", "")).expect("base config");
        let mut checked = 0;
        for (key, default, _) in all_options() {
            // Only literal defaults: a number, a quoted string, true/false.
            let literal = default.parse::<f64>().is_ok()
                || (default.starts_with('"') && default.ends_with('"'))
                || default == "true"
                || default == "false";
            if !literal {
                continue;
            }
            let line = format!("{} = {default}\n", key.rsplit('.').next().unwrap_or(&key));
            let text = match key.split('.').collect::<Vec<_>>().as_slice() {
                [_] => base(&line, "", "", ""),
                ["source", _] => base("", &line, "", ""),
                ["source", "tls", _] => base("", "", &line, ""),
                ["destination", _] => base("", "", "", &line),
                _ => continue,
            };
            let got = parse(&text).unwrap_or_else(|e| panic!("{key} = {default}: {e}"));
            assert_eq!(
                got, reference,
                "{key}: documented default {default} is not the default"
            );
            checked += 1;
        }
        assert!(checked >= 25, "only {checked} defaults checked");
    }

    #[test]
    fn readme_option_table_matches_the_code() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        let start = readme
            .find("<!-- options:start -->")
            .expect("README has <!-- options:start -->");
        let end = readme
            .find("<!-- options:end -->")
            .expect("README has <!-- options:end -->");
        let table = readme[start + "<!-- options:start -->".len()..end].trim();
        assert_eq!(
            table,
            markdown_table().trim(),
            "README option table is stale: regenerate it with `ringest options`"
        );
    }
}
