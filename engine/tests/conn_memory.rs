//! Heap held per idle mutual-TLS connection after its handshake, counted by
//! a global allocator, without sockets: the production source plan
//! ([`ringest::plan::Plan`]) makes each [`Conn`], a rustls client in memory
//! completes a TLS 1.3 (then a TLS 1.2) handshake with a client
//! certificate against it, and
//! the client is dropped. The connections stay; what they hold over the
//! baseline is what an idle connection costs the engine besides its slot
//! (`bench idle` reads the same from the process's RSS, which adds the
//! allocator's own overhead and the shard's slot table).
//!
//! The bound is set from the measurement of 2026-11-30 (see
//! [`HEAP_BYTES_PER_IDLE_CONN_MAX`]): a connection that starts keeping a
//! handshake buffer, or builds its AES-GCM keys before it needs them
//! (~700 bytes each), fails it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::Arc;

use ringest::batch::{Batcher, ConnMeta, Ring, WriterWaker};
use ringest::config::Config;
use ringest::conn::Conn;
use ringest::plan::Plan;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// Counts the bytes live on the allocating thread: everything below runs
/// on the test's own thread, so other threads (the harness) add nothing.
struct Counting;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn add(bytes: isize) {
    // try_with: a thread being torn down has no counter left; its frees do
    // not matter here.
    let _ = LIVE_BYTES.try_with(|c| c.set(c.get() + bytes));
}

// SAFETY: every call is forwarded to System unchanged; the counter is a
// const-initialised thread-local Cell, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes Rust code holds, from this thread's counter.
fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

/// Bytes malloc has handed out and not taken back, chunk headers included:
/// Rust's allocations (this test's allocator forwards to malloc) and C's,
/// which the counter never sees: aws-lc allocates its AEAD contexts and key
/// schedules with malloc.
fn malloc_bytes() -> isize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let m = unsafe { libc::mallinfo2() };
    (m.uordblks + m.hblkhd) as isize
}

/// Connections measured; enough that one-off allocations (a lazily built
/// table) vanish in the average.
const CONNECTIONS: usize = 200;
/// Malloc bytes one idle mutual-TLS connection may hold after its handshake,
/// on the userspace record layer (TLS 1.3, AES-128-GCM, testkit's ECDSA
/// P-256 client certificate). Measured 2026-11-30 with glibc 2.36: 3,996
/// while both AES-GCM keys were built at the handover; 2,596 with the keys
/// built at first use (`record::keys::LazyKey`); 2,451 (1,976 of them from
/// Rust) with the identity's strings shrunk to fit. What is left: rustls's
/// key schedule and the client's certificate chain in the
/// `KernelConnection` kept for KeyUpdate (~1,000 on the heap, 560 inline
/// in the record layer's box), the rest of that box (~250), the identity
/// (~200), the connection's metadata (~200).
const HEAP_BYTES_PER_IDLE_CONN_MAX: usize = 3_000;
/// The same for TLS 1.2 (ECDHE-ECDSA-AES128-GCM), which keeps no rustls
/// `KernelConnection` (TLS 1.2 has no KeyUpdate). Measured 2026-11-30:
/// 1,356, against 2,031 while it was kept.
const HEAP_BYTES_PER_IDLE_TLS12_CONN_MAX: usize = 1_700;

struct Fixture {
    plan: Plan,
    /// Clients offering only TLS 1.3, and only TLS 1.2.
    tls13: Arc<ClientConfig>,
    tls12: Arc<ClientConfig>,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(format!("ringest-conn-memory-{}", std::process::id()));
    let pki = testkit::Pki::generate(&dir);
    let q = |p: &Path| p.display().to_string();
    // kTLS off: the userspace record layer, the path of every connection on
    // a kernel without the tls module, and the one that holds key schedules.
    let text = format!(
        "[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tls\"\nktls = \"off\"\n\
         [source.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\n\
         peer_verify = \"required-trusted\"\n\
         [[destination]]\nname = \"out\"\ntype = \"file\"\npath = \"out.log\"\n",
        q(&pki.server_cert),
        q(&pki.server_key),
        q(&pki.ca)
    );
    let config = Config::from_toml(&text, Path::new("t.toml"), &dir).expect("config");
    let plan = Plan::build(config).expect("plan");
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let certs = |p: &Path| -> Vec<CertificateDer<'static>> {
        rustls_pki_types::pem::PemObject::pem_slice_iter(&read(p))
            .collect::<Result<_, _>>()
            .expect("PEM certificates")
    };
    let key: PrivateKeyDer<'static> =
        rustls_pki_types::pem::PemObject::from_pem_slice(&read(&pki.client_key)).expect("PEM key");
    let mut roots = RootCertStore::empty();
    for ca in certs(&pki.ca) {
        roots.add(ca).expect("CA");
    }
    let client = |version| {
        let config = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .expect("protocol version")
        .with_root_certificates(roots.clone())
        .with_client_auth_cert(certs(&pki.client_cert), key.clone_key())
        .expect("client certificate");
        Arc::new(config)
    };
    Fixture {
        tls13: client(&rustls::version::TLS13),
        tls12: client(&rustls::version::TLS12),
        plan,
        _dir: TempDir(dir),
    }
}

/// One connection through its handshake, as the shard drives it: what the
/// client writes goes to `Conn::on_data`, what the connection returns goes
/// back to the client. Returns the established connection.
fn establish(f: &Fixture, client: &Arc<ClientConfig>, batcher: &mut Batcher, i: usize) -> Conn {
    let peer = format!("127.0.0.2:{}", 1024 + i).parse().expect("address");
    let meta = Arc::new(ConnMeta {
        source: 0,
        peer,
        identity: None,
    });
    let mut conn = f.plan.sources[0]
        .new_conn(meta, &f.plan.ktls)
        .expect("connection");
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(client.clone(), name).expect("client");
    let mut out = Vec::new();
    // Bounded: a TLS 1.3 handshake is two round trips.
    for _ in 0..8 {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).expect("client write");
        }
        if !wire.is_empty() {
            conn.on_data(&mut wire, 0, batcher, &mut out)
                .unwrap_or_else(|e| panic!("connection {i} closed: {e}"));
        }
        if !out.is_empty() {
            client.read_tls(&mut &out[..]).expect("client read");
            client
                .process_new_packets()
                .expect("client accepts the server");
            out.clear();
        }
        if !client.is_handshaking() && !conn.is_handshaking() && !client.wants_write() {
            assert!(
                conn.meta().identity.is_some(),
                "the client's certificate was read"
            );
            return conn;
        }
    }
    panic!("connection {i}: handshake did not finish");
}

/// What one idle connection holds, on average over [`CONNECTIONS`]
/// handshakes by `client`: (malloc bytes, of them from Rust, the suite).
fn held_per_connection(f: &Fixture, client: &Arc<ClientConfig>) -> (f64, f64, &'static str) {
    let mut batcher = Batcher::new(
        Arc::new(Ring::new(4)),
        Arc::new(WriterWaker::new()),
        1 << 20,
    );
    let mut conns: Vec<Conn> = Vec::with_capacity(CONNECTIONS + 1);
    // The first handshake builds what every later one shares (lazily
    // initialised tables, the RNG): not a per-connection cost.
    conns.push(establish(f, client, &mut batcher, 0));
    let (before, malloc_before) = (live_bytes(), malloc_bytes());
    for i in 1..=CONNECTIONS {
        conns.push(establish(f, client, &mut batcher, i));
    }
    let rust = (live_bytes() - before) as f64 / CONNECTIONS as f64;
    let per_conn = (malloc_bytes() - malloc_before) as f64 / CONNECTIONS as f64;
    let buffered: usize = conns.iter().map(Conn::buffered_bytes).sum();
    assert_eq!(buffered, 0, "an idle connection keeps no buffer");
    let cipher = conns[0]
        .meta()
        .identity
        .as_ref()
        .map_or("none", |id| id.cipher);
    // And something was counted: the test measures connections, not nothing.
    assert!(rust > 200.0, "{rust:.0} bytes: the counter is not counting");
    assert!(per_conn > rust, "malloc's figure includes Rust's");
    (per_conn, rust, cipher)
}

#[test]
fn an_idle_mutual_tls_connection_holds_at_most_its_bound_of_heap() {
    let f = fixture();
    let inline = std::mem::size_of::<Conn>();
    for (version, client, bound) in [
        ("TLS 1.3", &f.tls13, HEAP_BYTES_PER_IDLE_CONN_MAX),
        ("TLS 1.2", &f.tls12, HEAP_BYTES_PER_IDLE_TLS12_CONN_MAX),
    ] {
        let (per_conn, rust, cipher) = held_per_connection(&f, client);
        eprintln!(
            "{CONNECTIONS} idle mutual-TLS connections ({version}, {cipher}): {per_conn:.0} malloc \
             bytes each, {rust:.0} of them requested by Rust, the rest by C (aws-lc) and \
             malloc's headers; plus {inline} inline in the shard's slot"
        );
        assert!(
            per_conn <= bound as f64,
            "an idle {version} connection holds {per_conn:.0} malloc bytes, over the bound of \
             {bound}: what does it keep after the handshake?"
        );
    }
}
