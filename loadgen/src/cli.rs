//! The command line. Names here are a contract with scripts and other tools
//! (issue 5): extend, do not rename.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::message::{Format, Framing};

/// Longest run accepted, so every run is bounded.
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Run length when neither --count nor --duration is given.
pub const DURATION_DEFAULT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Syslog-over-TLS load generator, sink and delivery verifier"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Send syslog messages over TLS or TCP.
    Send(Box<SendArgs>),
    /// Accept TLS/TCP syslog, count (and optionally store) frames, discard.
    Sink(SinkArgs),
    /// Check delivery: missing, duplicated and corrupted messages per connection.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// host:port to send to. Must be loopback unless --allow-remote.
    #[arg(long)]
    pub target: String,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Bind each connection to one of these IPv4 loopback addresses
    /// (comma-separated, 127.0.0.0/8), in turn, before connecting: every
    /// address adds a range of ephemeral ports, for more connections to one
    /// port than one address allows (~28k).
    #[arg(long)]
    pub source_addrs: Option<String>,
    /// Plain TCP instead of TLS.
    #[arg(long)]
    pub tcp: bool,
    /// Verify the server against this CA (PEM). Without it the server is not verified.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for mutual TLS.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Server name for SNI and verification (default: the target's host).
    #[arg(long)]
    pub sni: Option<String>,
    /// Restrict to one TLS version: 1.2 or 1.3.
    #[arg(long, value_parser = crate::tls::parse_tls_version)]
    pub tls_version: Option<crate::tls::TlsVersion>,
    /// Cipher suites, comma-separated: TLS13_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256, aes128gcm...
    #[arg(long)]
    pub cipher: Option<String>,
    /// Key-exchange groups, comma-separated: x25519, secp256r1, X25519MLKEM768...
    #[arg(long)]
    pub kx: Option<String>,
    /// Offer TLS session resumption (off: every handshake is a full one).
    #[arg(long)]
    pub resume: bool,
    /// Concurrent connections (slots, for --handshake-only).
    #[arg(long, default_value_t = 8)]
    pub connections: u32,
    /// Sender threads (default: one per core). Connections are spread over them.
    #[arg(long)]
    pub threads: Option<u32>,
    /// Exact length of each syslog message in bytes, without framing.
    #[arg(long, default_value_t = 300)]
    pub size: usize,
    /// Run length: 10s, 500ms, 2m or a number of seconds. Default 10s unless --count.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Total messages across all connections (handshakes with --handshake-only).
    #[arg(long)]
    pub count: Option<u64>,
    /// Fixed rate in messages per second for the whole run; reports latency.
    #[arg(long)]
    pub rate: Option<f64>,
    /// With --rate, wake at most once per this many microseconds and send
    /// all that is due (0: wake for each message's intended time).
    #[arg(long, default_value_t = 0)]
    pub tick_us: u64,
    #[arg(long, value_enum, default_value = "rfc5424")]
    pub format: Format,
    /// Add a structured-data element [loadgen@32473 run=".." conn=".."] (RFC 5424).
    #[arg(long)]
    pub sd: bool,
    /// Replay this file's lines (looped) with the marker inserted at the start of MSG.
    #[arg(long)]
    pub read_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "octet-counted")]
    pub framing: Framing,
    /// Messages per TLS record (per chunk with --tcp). 1 is loggen-like.
    /// Capped so a record never exceeds 16 KiB of plaintext.
    #[arg(long, default_value_t = 50)]
    pub records_per_write: u64,
    /// Records are coalesced into socket writes of about this many bytes;
    /// 1 makes one write per record, like loggen.
    #[arg(long, default_value_t = 256 * 1024)]
    pub write_bytes: usize,
    /// New connections per second for the whole run (default: as fast as possible).
    #[arg(long)]
    pub connect_rate: Option<f64>,
    /// Most connects+handshakes in flight per thread.
    #[arg(long, default_value_t = 256)]
    pub max_pending: u32,
    /// Open N connections, complete the handshakes, hold them idle until the end.
    #[arg(long)]
    pub hold_idle: Option<u32>,
    /// Only handshake: connect, handshake, close cleanly, repeat; reports handshakes/s.
    #[arg(long)]
    pub handshake_only: bool,
    /// Connect + handshake timeout.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// How long a clean close may wait for the server's EOF.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub close_timeout: Duration,
    /// Under TLS 1.3, wait up to this long after the handshake for the
    /// server's first record (a ticket, or a refusal alert); 0 disables.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub confirm_timeout: Duration,
    /// Leave Nagle's algorithm on (no TCP_NODELAY). Only sensible with small
    /// writes (--write-bytes 1), where the kernel then coalesces segments.
    #[arg(long)]
    pub nagle: bool,
    /// TCP congestion control of every sending connection (TCP_CONGESTION),
    /// e.g. cubic; default: the system's (net.ipv4.tcp_congestion_control).
    /// On loopback a pacing one (bbr) sends from per-socket timers that
    /// interrupt whatever runs, often the server under test; bench uses cubic.
    #[arg(long)]
    pub tcp_congestion: Option<String>,
    /// Who seals TLS 1.3 records after the handshake: loadgen's own record
    /// layer (encodes and encrypts in place) or rustls.
    #[arg(long, value_enum, default_value = "loadgen")]
    pub record_layer: RecordLayer,
    /// Send a TLS 1.3 KeyUpdate every N records (default: near the suite's
    /// confidentiality limit). For tests.
    #[arg(long, hide = true)]
    pub rekey_after: Option<u64>,
    /// Run id (8 hex digits) instead of a random one.
    #[arg(long)]
    pub run_id: Option<String>,
    /// HOSTNAME field of the messages (default: this machine's name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Print one JSON object with the results on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RecordLayer {
    Loadgen,
    Rustls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SinkFraming {
    /// Per connection, from the first byte: a digit means octet counting.
    Auto,
    OctetCounted,
    Newline,
}

#[derive(Args, Debug)]
pub struct SinkArgs {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long)]
    pub listen: String,
    /// Allow a listen address that is not loopback.
    #[arg(long)]
    pub allow_remote: bool,
    /// Plain TCP instead of TLS.
    #[arg(long)]
    pub tcp: bool,
    /// Server certificate chain (PEM).
    #[arg(long, required_unless_present = "tcp")]
    pub cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, required_unless_present = "tcp")]
    pub key: Option<PathBuf>,
    /// Require client certificates issued by this CA.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    #[arg(long, value_parser = crate::tls::parse_tls_version)]
    pub tls_version: Option<crate::tls::TlsVersion>,
    /// Cipher suites the server accepts (same names as send --cipher).
    #[arg(long)]
    pub cipher: Option<String>,
    /// TLS 1.3 session tickets sent after each handshake.
    #[arg(long, default_value_t = 2)]
    pub tickets: usize,
    #[arg(long, value_enum, default_value = "auto")]
    pub framing: SinkFraming,
    /// Largest frame accepted, in bytes; a larger one closes the connection.
    #[arg(long, default_value_t = 65536)]
    pub max_frame: usize,
    /// Write every received message to this file, one per line (a single
    /// trailing LF inside a frame is dropped first).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// listen() backlog.
    #[arg(long, default_value_t = 4096)]
    pub backlog: u32,
    /// Exit (printing the summary) once connections have come and gone and
    /// nothing happened for this many milliseconds.
    #[arg(long)]
    pub exit_after_idle_ms: Option<u64>,
    /// Longest the sink runs.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub duration: Duration,
    /// Print a progress line on stderr every second while data flows.
    #[arg(long)]
    pub progress: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// One message per line; the marker may be anywhere in the line.
    Raw,
    /// One JSON object per line; the message is the "message" string field.
    Json,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[arg(long, value_enum, default_value = "raw")]
    pub format: VerifyFormat,
    /// Files to read ("-" for stdin).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Only this run id (8 hex digits); other runs' lines are counted, not checked.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Messages expected in total (distributed over connections as `send --count` does).
    #[arg(long)]
    pub expect_count: Option<u64>,
    /// Connections the expected count was spread over (default: the highest seen + 1).
    #[arg(long)]
    pub expect_connections: Option<u32>,
    /// Expected messages per connection: CONN=COUNT,CONN=COUNT...
    #[arg(long)]
    pub expect: Option<String>,
    /// Take expectations (run id, per-connection counts) from `send --json` output.
    #[arg(long)]
    pub expect_json: Option<PathBuf>,
    /// Only check the marker, not the padding after it (for --read-file runs).
    #[arg(long)]
    pub no_padding_check: bool,
    /// Also require each message (raw: whole line) to be exactly this many bytes.
    #[arg(long)]
    pub size: Option<usize>,
    /// Highest sequence number accepted (bounds the bitmaps' memory).
    #[arg(long, default_value_t = 1 << 32)]
    pub max_seq: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Accept lines without a loadgen marker (other traffic in the same
    /// file); without it, any such line fails the check.
    #[arg(long)]
    pub allow_unmarked: bool,
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (use 10s, 500ms, 2m or seconds)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    let d = Duration::from_secs_f64(secs);
    if d > DURATION_MAX {
        return Err(format!("duration {s:?} exceeds the 24h limit"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("25h").is_err());
    }

    #[test]
    fn cli_parses_the_documented_command_lines() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "loadgen",
            "send",
            "--target",
            "127.0.0.1:6514",
            "--ca",
            "ca.pem",
            "--cert",
            "c.pem",
            "--key",
            "c.key",
            "--connections",
            "8",
            "--threads",
            "1",
            "--size",
            "300",
            "--duration",
            "10s",
            "--framing",
            "octet-counted",
            "--records-per-write",
            "50",
            "--json",
            "--tls-version",
            "1.3",
            "--cipher",
            "TLS13_AES_128_GCM_SHA256",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Send(_)));
        Cli::try_parse_from([
            "loadgen",
            "sink",
            "--listen",
            "127.0.0.1:7514",
            "--cert",
            "s.pem",
            "--key",
            "s.key",
            "--ca",
            "ca.pem",
        ])
        .unwrap();
        Cli::try_parse_from(["loadgen", "verify", "--format", "json", "a", "b"]).unwrap();
        match Cli::try_parse_from(["loadgen", "verify", "--allow-unmarked", "a"])
            .unwrap()
            .command
        {
            Command::Verify(v) => assert!(v.allow_unmarked),
            _ => panic!("not verify"),
        }
        assert!(Cli::try_parse_from(["loadgen", "sink", "--listen", "127.0.0.1:1"]).is_err());
        Cli::try_parse_from(["loadgen", "sink", "--listen", "127.0.0.1:1", "--tcp"]).unwrap();
    }
}
