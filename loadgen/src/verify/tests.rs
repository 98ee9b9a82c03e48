use super::report::RunReport;
use super::*;
use crate::message::{ConnEncoder, Format, Framing, MessageSpec};

/// Messages of `conns` connections x `per_conn` each, one per line.
fn lines(conns: u32, per_conn: u64) -> Vec<Vec<u8>> {
    let spec = MessageSpec {
        format: Format::Rfc5424,
        framing: Framing::Newline,
        size: 200,
        sd: false,
        run: 0x1234_abcd,
        hostname: "h".into(),
        pid: 1,
    };
    let mut out = Vec::new();
    for c in 0..conns {
        let enc = ConnEncoder::new(&spec, c, None);
        for s in 0..per_conn {
            let mut m = Vec::new();
            enc.encode(s, &mut m).unwrap();
            m.pop(); // the LF
            out.push(m);
        }
    }
    out
}

fn check(lines: &[Vec<u8>], expect: &Expect) -> (Checker, Vec<RunReport>) {
    let mut data = Vec::new();
    for l in lines {
        data.extend_from_slice(l);
        data.push(b'\n');
    }
    let mut c = Checker::new(true, None, 1 << 32, None);
    check_stream(&mut c, &data[..], VerifyFormat::Raw).unwrap();
    let r = report(&c, expect).unwrap();
    (c, r)
}

fn totals(r: &[RunReport]) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for run in r {
        t.0 += run.sum(|c| c.received);
        t.1 += run.sum(|c| c.missing);
        t.2 += run.sum(|c| c.duplicated);
        t.3 += run.sum(|c| c.corrupted);
    }
    t
}

#[test]
fn intact_file_passes() {
    let l = lines(3, 100);
    let expect = Expect {
        total: Some(300),
        connections: Some(3),
        ..Default::default()
    };
    let (c, r) = check(&l, &expect);
    assert_eq!(totals(&r), (300, 0, 0, 0));
    assert!(c.unattributed.is_empty());
    assert_eq!(c.unmarked, 0);
}

#[test]
fn removed_line_is_missing() {
    let mut l = lines(2, 50);
    l.remove(10); // conn 0, seq 10
    let (_, r) = check(&l, &Expect::default());
    assert_eq!(totals(&r), (99, 1, 0, 0));
    assert_eq!(r[0].conns[0].missing, 1);
    assert_eq!(r[0].conns[1].missing, 0);
}

#[test]
fn trailing_loss_needs_an_expectation() {
    let mut l = lines(2, 50);
    l.remove(49); // conn 0's last message
    let (_, r) = check(&l, &Expect::default());
    assert_eq!(
        totals(&r).1,
        0,
        "no gap, nothing to see without expectations"
    );
    let expect = Expect {
        total: Some(100),
        connections: Some(2),
        ..Default::default()
    };
    let (_, r) = check(&l, &expect);
    assert_eq!(totals(&r).1, 1);
    // And a connection that never showed up at all.
    let expect = Expect {
        per_conn: Some(parse_expect_list("0=50,1=50,2=7").unwrap()),
        ..Default::default()
    };
    let (_, r) = check(&lines(2, 50), &expect);
    assert_eq!(totals(&r).1, 7);
}

#[test]
fn duplicated_line_is_reported() {
    let mut l = lines(2, 50);
    l.insert(70, l[60].clone());
    let (_, r) = check(&l, &Expect::default());
    assert_eq!(totals(&r), (101, 0, 1, 0));
    assert_eq!(r[0].conns[1].duplicated, 1);
}

#[test]
fn altered_padding_byte_is_corrupted() {
    let mut l = lines(2, 50);
    let last = l[5].len() - 10;
    l[5][last] ^= 0x01;
    let (_, r) = check(&l, &Expect::default());
    assert_eq!(totals(&r), (100, 0, 0, 1));
}

#[test]
fn removed_duplicated_and_altered_together_fail() {
    let mut l = lines(3, 40);
    l.remove(3);
    l.push(l[20].clone());
    let n = l[50].len();
    l[50][n - 2] = b'#';
    let (_, r) = check(&l, &Expect::default());
    assert_eq!(totals(&r), (120, 1, 1, 1));
}

#[test]
fn truncated_and_unparsable_markers_are_corrupted() {
    let mut l = lines(1, 10);
    let n = l[2].len();
    l[2].truncate(n - 1); // the terminator is gone
    l.push(b"<13>1 - - - - - - lg=zzzz/1/2 hello".to_vec());
    l.push(b"no marker here, flg=1 either".to_vec());
    let mut data = Vec::new();
    for x in &l {
        data.extend_from_slice(x);
        data.push(b'\n');
    }
    let mut c = Checker::new(true, None, 1 << 32, None);
    check_stream(&mut c, &data[..], VerifyFormat::Raw).unwrap();
    let r = report(&c, &Expect::default()).unwrap();
    assert_eq!(totals(&r), (10, 0, 0, 1));
    assert_eq!(c.unattributed.get("marker_bad_run_id"), Some(&1));
    assert_eq!(c.unmarked, 1);
}

#[test]
fn marker_survives_a_rewritten_header_and_json() {
    let l = lines(1, 3);
    let mut data = Vec::new();
    for x in &l {
        let at = memmem::find(x, b"lg=").unwrap();
        let rewritten = [b"Nov 26 15:16:40 otherhost prog: ".as_slice(), &x[at..]].concat();
        let s = serde_json::to_string(&String::from_utf8(rewritten).unwrap()).unwrap();
        data.extend_from_slice(format!("{{\"host\":\"x\",\"message\":{s}}}\n").as_bytes());
    }
    let mut c = Checker::new(true, None, 1 << 32, None);
    check_stream(&mut c, &data[..], VerifyFormat::Json).unwrap();
    let r = report(&c, &Expect::default()).unwrap();
    assert_eq!(totals(&r), (3, 0, 0, 0));
}

#[test]
fn lines_split_across_reads() {
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(7).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let l = lines(2, 20);
    let mut data = Vec::new();
    for x in &l {
        data.extend_from_slice(x);
        data.push(b'\n');
    }
    data.pop(); // no final LF
    let mut c = Checker::new(true, None, 1 << 32, None);
    check_stream(&mut c, Trickle(&data), VerifyFormat::Raw).unwrap();
    let r = report(&c, &Expect::default()).unwrap();
    assert_eq!(totals(&r), (40, 0, 0, 0));
}

#[test]
fn unmarked_line_fails_unless_allowed() {
    let mut l = lines(1, 10);
    let (c, r) = check(&l, &Expect::default());
    assert!(passes(&c, &r, false));
    // An empty line (a relay that wrote an empty $MSG) and a foreign one.
    l.insert(4, Vec::new());
    l.push(b"<13>1 - host app - - - relay restarted".to_vec());
    let (c, r) = check(&l, &Expect::default());
    assert_eq!(c.unmarked, 2);
    assert_eq!(totals(&r), (10, 0, 0, 0));
    assert!(!passes(&c, &r, false), "unmarked lines fail by default");
    assert!(passes(&c, &r, true), "--allow-unmarked accepts them");
}

#[test]
fn a_file_without_any_marker_never_passes() {
    let (c, r) = check(&[b"hello".to_vec()], &Expect::default());
    assert!(!passes(&c, &r, true));
}

#[test]
fn bitmap_counts() {
    let mut c = ConnState::default();
    for s in [0u64, 1, 5, 64, 200] {
        assert!(c.mark(s));
        c.unique += 1;
    }
    assert!(!c.mark(5));
    assert_eq!(c.missing(201), 201 - 5);
    assert_eq!(c.missing(6), 3);
    assert_eq!(c.missing(64), 61);
    assert_eq!(c.missing(65), 61);
    assert_eq!(c.beyond(6), 2);
    assert_eq!(c.beyond(0), 5);
}
