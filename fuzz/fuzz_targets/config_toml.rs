//! `Config::from_toml` on arbitrary text: it must never panic, and what it
//! accepts must hold together. Checked on every input:
//! - no panic, whatever the text (the error's Display must not panic either);
//! - an accepted config validates again, has only absolute paths (relative
//!   ones were resolved against the base folder), and routes every source
//!   to existing destinations.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ringest::config::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let file = Path::new("/etc/ringest/fuzz.toml");
    let base = Path::new("/etc/ringest");
    match Config::from_toml(&text, file, base) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(config) => {
            assert_eq!(config.validate(), Ok(()));
            assert!(config.destinations.iter().all(|d| d.path.is_absolute()));
            for s in &config.sources {
                if let Some(tls) = &s.tls {
                    let paths = [&tls.cert_file, &tls.key_file, &tls.ca_file, &tls.ca_dir];
                    assert!(paths.into_iter().flatten().all(|p| p.is_absolute()));
                }
            }
            let routes = config.routes();
            assert_eq!(routes.len(), config.sources.len());
            assert!(routes
                .iter()
                .flatten()
                .all(|&d| d < config.destinations.len()));
        }
    }
});
