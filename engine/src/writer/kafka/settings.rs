//! A kafka destination's librdkafka properties, from its config keys.
//! Pure, so the mapping is tested without a client.

use rdkafka::config::ClientConfig;

use super::partition::Partitioner;
use crate::config::kafka::KafkaAcks;
use crate::config::DestinationConfig;

/// The client config, each property checked by librdkafka (name and
/// value), without creating a client: `check-config` and `serve` refuse a
/// misspelt `[destination.properties]` key alike.
pub fn client_config(cfg: &DestinationConfig) -> Result<ClientConfig, String> {
    let mut client = ClientConfig::new();
    for (k, v) in properties(cfg) {
        client.set(k, v);
    }
    client
        .create_native_config()
        .map_err(|e| format!("destination {}: kafka client config: {e}", cfg.name))?;
    Ok(client)
}

/// The client's `message.max.bytes` (set in `[destination.properties]` or
/// librdkafka's default): the largest record it produces.
pub fn message_max_bytes(client: &ClientConfig) -> Result<usize, String> {
    let value = client
        .create_native_config()
        .and_then(|c| c.get("message.max.bytes"))
        .map_err(|e| format!("kafka client config: {e}"))?;
    value
        .parse()
        .map_err(|_| format!("kafka client config: message.max.bytes = {value:?}"))
}

/// The topic's partitioner (librdkafka's `partitioner` topic property,
/// which `[destination.properties]` may set: librdkafka puts a topic
/// property given with the client's into its default topic config, the
/// one the destination's topic handle uses). Unset: librdkafka's default.
/// `Err(value)`: one [`Partitioner`] does not know.
pub fn partitioner(client: &ClientConfig) -> Result<Partitioner, String> {
    // librdkafka checked the value already (client_config). The property
    // is unknown to a client config without topic properties (ringest
    // always sets some: acks, message.timeout.ms).
    let Ok(value) = client
        .create_native_config()
        .and_then(|c| c.get("partitioner"))
    else {
        return Ok(Partitioner::DEFAULT);
    };
    Partitioner::from_property(&value).ok_or(value)
}

/// Produce requests in flight per broker connection (librdkafka's
/// `max.in.flight.requests.per.connection`; see [`properties`]).
pub const MAX_IN_FLIGHT_REQUESTS: u32 = 2;
// librdkafka refuses more than 5 with idempotence; at 5 it spins (above).
const _: () = assert!(MAX_IN_FLIGHT_REQUESTS >= 1 && MAX_IN_FLIGHT_REQUESTS < 5);

/// The properties, in the order they are set: ringest's own first, then
/// `[destination.properties]` (config/kafka.rs refuses those that would
/// override ringest's named keys; the defaults without a key,
/// `metadata.recovery.strategy` and `max.in.flight.requests.per.connection`,
/// it lets through, and the later value wins).
pub fn properties(cfg: &DestinationConfig) -> Vec<(String, String)> {
    let own = [
        ("bootstrap.servers", cfg.brokers.join(",")),
        ("client.id", format!("ringest-{}", cfg.name)),
        ("acks", cfg.acks.property().to_string()),
        (
            "enable.idempotence",
            (cfg.acks == KafkaAcks::All).to_string(),
        ),
        ("compression.type", cfg.compression.property().to_string()),
        ("linger.ms", cfg.linger_ms.to_string()),
        ("batch.size", cfg.batch_bytes.to_string()),
        // The queue is bounded in bytes, not messages: when it is full the
        // writer waits, the rings fill and the sources stop reading.
        (
            "queue.buffering.max.kbytes",
            cfg.producer_queue_max_bytes.div_ceil(1024).to_string(),
        ),
        ("queue.buffering.max.messages", i32::MAX.to_string()),
        // 0 = never: librdkafka must not drop a message on its own.
        ("message.timeout.ms", "0".to_string()),
        // librdkafka 2.12's default, "rebootstrap", once left a producer
        // with no broker at all after the broker restarted (seen in
        // tests/kafka.rs's outage test: its queue stayed full, the rings
        // filled and the sources stopped for good). "none" keeps retrying
        // the brokers it knows. A `[destination.properties]` entry may set
        // it back.
        ("metadata.recovery.strategy", "none".to_string()),
        // 2 produce requests in flight per broker connection, not the
        // idempotent producer's 5: librdkafka 2.12's broker thread spins
        // otherwise. In rd_kafka_toppar_producer_serve (rdkafka_broker.c)
        // a partition whose oldest queued message is past linger.ms sets
        // the thread's next wake-up to "now" (3976-3987, rdkafka_msg.c
        // 1805-1815) before the idempotent window check, which counts
        // messages, not requests (4018, 4063-4064: 5 - messages in flight,
        // i.e. one request per partition), stops it; the thread then polls
        // its socket with a 0 ms timeout (3630, rdkafka_transport.c 1259)
        // until a response comes. With fewer slots than busy partitions a
        // built request waits in the output queue, and while it waits no
        // partition is served at all (3899 and 3834: the backpressure
        // threshold is 1 with idempotence), so the thread sleeps in poll.
        // Counted with a 4-partition backlog for 10 s: 2,650-9,100
        // zero-timeout polls per produce request at 5, 14-77 at 2, 1 at 1.
        // The broker takes one request per connection at a time, so a
        // second one on the wire is all the pipelining there is to keep.
        // Idempotence and acks=all are unchanged (librdkafka allows 1..5
        // with them). A `[destination.properties]` entry may set it back.
        (
            "max.in.flight.requests.per.connection",
            MAX_IN_FLIGHT_REQUESTS.to_string(),
        ),
    ];
    let mut out: Vec<(String, String)> = own.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    if let Some(tls) = &cfg.tls {
        // librdkafka checks the brokers' certificates and names
        // (ssl.endpoint.identification.algorithm = https) by default.
        out.push(("security.protocol".into(), "ssl".into()));
        let files = [
            ("ssl.ca.location", &tls.ca_file),
            ("ssl.certificate.location", &tls.cert_file),
            ("ssl.key.location", &tls.key_file),
        ];
        for (k, f) in files {
            if let Some(f) = f {
                out.push((k.into(), f.display().to_string()));
            }
        }
    }
    out.extend(cfg.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn dest(extra: &str) -> DestinationConfig {
        let text = format!(
            "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
             [[destination]]\nname = \"k\"\ntype = \"kafka\"\nbrokers = [\"127.0.0.1:9092\", \"b:9093\"]\n\
             topic = \"logs\"\n{extra}"
        );
        let mut c =
            Config::from_toml(&text, Path::new("t.toml"), Path::new("/tmp")).expect("config");
        c.destinations.remove(0)
    }

    fn get<'a>(p: &'a [(String, String)], k: &str) -> &'a str {
        p.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{k} not set"))
    }

    #[test]
    fn defaults_are_acks_all_idempotent_and_never_time_out() {
        let p = properties(&dest(""));
        assert_eq!(get(&p, "bootstrap.servers"), "127.0.0.1:9092,b:9093");
        assert_eq!(get(&p, "acks"), "all");
        assert_eq!(get(&p, "enable.idempotence"), "true");
        assert_eq!(get(&p, "message.timeout.ms"), "0");
        assert_eq!(get(&p, "metadata.recovery.strategy"), "none");
        assert_eq!(get(&p, "compression.type"), "none");
        assert_eq!(get(&p, "queue.buffering.max.kbytes"), "16384");
        assert_eq!(get(&p, "max.in.flight.requests.per.connection"), "2");
    }

    #[test]
    fn in_flight_requests_below_the_idempotent_window_unless_the_properties_set_them() {
        let in_flight = |c: &ClientConfig| {
            c.create_native_config()
                .and_then(|n| n.get("max.in.flight.requests.per.connection"))
                .expect("librdkafka knows the property")
        };
        let default = client_config(&dest("")).expect("config");
        assert_eq!(in_flight(&default), MAX_IN_FLIGHT_REQUESTS.to_string());
        let set_back = client_config(&dest(
            "[destination.properties]\n\"max.in.flight.requests.per.connection\" = \"5\"\n",
        ))
        .expect("config");
        assert_eq!(in_flight(&set_back), "5", "the table's value wins");
    }

    #[test]
    fn named_keys_and_passed_through_properties_are_mapped() {
        let p = properties(&dest(
            "acks = \"1\"\ncompression = \"zstd\"\nlinger_ms = 20\nbatch_bytes = 65536\n\
             producer_queue_max_bytes = 1048577\n[destination.properties]\n\"socket.keepalive.enable\" = \"true\"\n",
        ));
        assert_eq!(get(&p, "acks"), "1");
        assert_eq!(get(&p, "enable.idempotence"), "false");
        assert_eq!(get(&p, "compression.type"), "zstd");
        assert_eq!(get(&p, "linger.ms"), "20");
        assert_eq!(get(&p, "batch.size"), "65536");
        assert_eq!(get(&p, "queue.buffering.max.kbytes"), "1025", "rounded up");
        assert_eq!(get(&p, "socket.keepalive.enable"), "true");
    }

    #[test]
    fn destination_tls_maps_to_librdkafka_ssl_files() {
        let p = properties(&dest(
            "[destination.tls]\nca_file = \"pki/ca.pem\"\ncert_file = \"c.pem\"\nkey_file = \"c.key\"\n",
        ));
        assert_eq!(get(&p, "security.protocol"), "ssl");
        assert_eq!(
            get(&p, "ssl.ca.location"),
            "/tmp/pki/ca.pem",
            "relative to the config"
        );
        assert_eq!(get(&p, "ssl.certificate.location"), "/tmp/c.pem");
        assert_eq!(get(&p, "ssl.key.location"), "/tmp/c.key");
        assert!(!properties(&dest(""))
            .iter()
            .any(|(k, _)| k.starts_with("ssl.")));
    }

    #[test]
    fn message_max_bytes_is_librdkafkas_default_unless_set() {
        let default = client_config(&dest("")).expect("config");
        assert_eq!(message_max_bytes(&default), Ok(1_000_000));
        let set = client_config(&dest(
            "[destination.properties]\n\"message.max.bytes\" = \"2000000\"\n",
        ))
        .expect("config");
        assert_eq!(message_max_bytes(&set), Ok(2_000_000));
    }

    #[test]
    fn the_partitioner_is_librdkafkas_default_unless_the_properties_set_one() {
        let default = client_config(&dest("")).expect("config");
        assert_eq!(partitioner(&default), Ok(Partitioner::ConsistentRandom));
        let set = client_config(&dest(
            "[destination.properties]\n\"partitioner\" = \"murmur2_random\"\n",
        ))
        .expect("config");
        assert_eq!(partitioner(&set), Ok(Partitioner::Murmur2Random));
        let e = client_config(&dest(
            "[destination.properties]\n\"partitioner\" = \"sticky\"\n",
        ))
        .expect_err("librdkafka refuses a partitioner it does not have");
        assert!(e.contains("partitioner"), "{e}");
    }

    #[test]
    fn librdkafka_refuses_an_unknown_property_before_any_client_exists() {
        client_config(&dest("")).expect("ringest's own properties are valid");
        let e = client_config(&dest(
            "[destination.properties]\n\"socket.keepalive.enabled\" = \"true\"\n",
        ))
        .expect_err("misspelt");
        assert!(e.contains("destination k: kafka client config"), "{e}");
        assert!(e.contains("socket.keepalive.enabled"), "{e}");
    }
}
