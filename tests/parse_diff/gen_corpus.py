#!/usr/bin/env python3
"""Writes tests/parse_diff/corpus.txt, the differential corpus of
tests/parse_diff.rs: real-world samples with their sources, then generated
variants of every case ringest's parser tolerates (issue 14).

Deterministic (fixed seed): run it again after editing, and commit both.

    python3 tests/parse_diff/gen_corpus.py

Corpus format, one frame per line:
- `#` starts a comment; `#@ source: ...` names where the following lines
  come from, until the next `#@`.
- A line starting with `~` is escaped: the rest is decoded with `\\xNN` and
  `\\\\`, for bytes a line cannot hold (LF, CR, NUL) or that an editor
  would mangle (invalid UTF-8, a BOM).
- Any other line is the frame's bytes as they are.
"""

import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus.txt")

rng = random.Random(14)
lines = []


def source(text):
    lines.append(b"#@ source: " + text.encode())


def add(frame):
    """A frame as bytes; escaped when a line cannot hold it as is."""
    if isinstance(frame, str):
        frame = frame.encode()
    needs_escape = (
        any(b in frame for b in (0x0A, 0x0D, 0x00))
        or frame.startswith((b"~", b"#"))
        or b"\xef\xbb\xbf" in frame
    )
    try:
        frame.decode("utf-8")
    except UnicodeDecodeError:
        needs_escape = True
    if needs_escape:
        out = bytearray(b"~")
        for b in frame:
            if b == 0x5C:
                out += b"\\\\"
            elif 0x20 <= b < 0x7F:
                out.append(b)
            else:
                out += b"\\x%02x" % b
        lines.append(bytes(out))
    else:
        lines.append(frame)


# ---------------------------------------------------------------- samples

source("RFC 3164 section 5.4, examples 1-4 (https://www.rfc-editor.org/rfc/rfc3164#section-5.4)")
add("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8")
add("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!")
add("<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: Conveyer1=OK, Conveyer2=OK # %%")
add("<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!")
source("RFC 3164 section 5.4 example 2 as printed, with the single space the RFC's text shows")
add("<13>Feb 5 17:32:18 10.0.0.99 Use the BFG!")

source("RFC 5424 section 6.5, examples 1-4 (https://www.rfc-editor.org/rfc/rfc5424#section-6.5); BOM as the three UTF-8 bytes")
add(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8")
add("<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.")
add(b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] \xef\xbb\xbfAn application event log entry...')
add('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]')
source("RFC 5424 section 6.5, the same examples with the literal text BOM the RFC prints")
add("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8")
add('<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] BOMAn application event log entry...')
source("RFC 5424 section 6.3.5, SD examples, including the two it calls invalid (https://www.rfc-editor.org/rfc/rfc5424#section-6.3.5)")
add('<165>1 2003-10-11T22:14:15.003Z host app - - [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]')
add('<165>1 2003-10-11T22:14:15.003Z host app - - [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] [examplePriority@32473 class="high"]')
add('<165>1 2003-10-11T22:14:15.003Z host app - - [ exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]')
source("RFC 5424 section 7, the IANA SD-IDs timeQuality, origin and meta (https://www.rfc-editor.org/rfc/rfc5424#section-7)")
add('<13>1 2026-11-29T18:00:00.000001Z host app - - [timeQuality tzKnown="1" isSynced="1" syncAccuracy="60000000"] sync')
add('<13>1 2026-11-29T18:00:00Z host app - - [origin ip="192.0.2.1" ip="192.0.2.129"] two ips')
add('<13>1 2026-11-29T18:00:00Z host app - - [origin enterpriseId="32473" software="test" swVersion="1.0"] origin')
add('<13>1 2026-11-29T18:00:00Z host app - - [meta sequenceId="29" sysUpTime="1234" language="en-US"] meta')
source("RFC 5425 section 4.3.1 framing example payload (https://www.rfc-editor.org/rfc/rfc5425)")
add("<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvick on /dev/pts/8")

source("util-linux logger(1) --rfc5424 and --rfc3164 output (man7.org/linux/man-pages/man1/logger.1.html); values ours")
add('<13>1 2026-11-29T18:00:00.512345+01:00 web-01 alice - - [timeQuality tzKnown="1" isSynced="1" syncAccuracy="414500"] backup done')
add('<13>1 2026-11-29T18:00:00.512345+01:00 web-01 alice 4242 - [timeQuality tzKnown="1" isSynced="0"] with --id')
add("<13>Nov 29 18:00:00 web-01 alice: logger --rfc3164")
add("<13>Nov  9 08:07:06 web-01 alice[4242]: logger --rfc3164 --id")
source("rsyslog RSYSLOG_ForwardFormat template: ISO timestamp in a BSD header (www.rsyslog.com/doc/configuration/templates.html); values ours")
add("<30>2026-11-29T18:00:00.123456+01:00 web-01 systemd[1]: Started Session 4 of user alice.")
add("<86>2026-11-29T18:00:01.000001+01:00 web-01 sshd[811]: Accepted publickey for alice from 192.0.2.10 port 50514 ssh2: ED25519 SHA256:abc")
add("<38>2026-11-29T18:00:02-05:00 db-2 sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx")
source("rsyslog RSYSLOG_SyslogProtocol23Format template (www.rsyslog.com/doc/configuration/templates.html); values ours")
add("<13>1 2026-11-29T18:00:00.123456+01:00 web-01 app 1234 - - hello from rsyslog")
add("<134>1 2026-11-29T18:00:00.123+00:00 lb-1 haproxy 77 - - 192.0.2.1:4711 [29/Nov/2026:18:00:00.123] fe be/srv1 0/0/1/2/3 200 512 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\"")
source("syslog-ng syslog() destination output, with its meta.sequenceId SD (syslog-ng OSE 3.38 admin guide, syslog() destination); values ours")
add('<38>1 2026-11-29T18:00:00+01:00 web-01 sshd 811 - [meta sequenceId="1"] Server listening on 0.0.0.0 port 22.')
add('<38>1 2026-11-29T18:00:00+01:00 web-01 sshd 811 - [meta sequenceId="2"][origin ip="192.0.2.5"] Server listening on :: port 22.')
source("Python logging.handlers.SysLogHandler: PRI then the message, and a NUL at the end by default (docs.python.org/3/library/logging.handlers.html#sysloghandler)")
add(b"<14>myapp: INFO started\x00")
add(b"<11>Traceback (most recent call last):\x00")
add(b"<14>hello world")
source("Go log/syslog, network writer: RFC 3339 stamp, host, tag[pid] (pkg.go.dev/log/syslog, writeString); values ours")
add("<30>2026-11-29T18:00:00+01:00 web-01 myservice[2345]: listening on :8080")
add("<27>2026-11-29T18:00:00Z web-01 myservice[2345]: cannot open /etc/x.conf: permission denied")
source("Linux local syslog lines as in /var/log/syslog and auth.log (Debian), framed with a PRI; values ours")
add("<38>Nov 29 18:00:00 web-01 sshd[811]: Accepted password for alice from 192.0.2.10 port 50514 ssh2")
add("<86>Nov 29 18:00:00 web-01 sudo: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)")
add("<78>Nov 29 18:17:01 web-01 CRON[4242]: (root) CMD (   cd / && run-parts --report /etc/cron.hourly)")
add("<4>Nov 29 18:00:00 web-01 kernel: [ 1234.567890] eth0: Link is Up - 1Gbps/Full - flow control rx/tx")
add("<6>Nov 29 18:00:00 web-01 kernel: [    0.000000] Linux version 6.1.0-27-amd64")
add("<30>Nov 29 18:00:00 web-01 systemd[1]: Starting Daily apt upgrade and clean activities...")
add("<22>Nov 29 18:00:00 mx-1 postfix/smtpd[3121]: connect from unknown[192.0.2.99]")
add("<22>Nov 29 18:00:00 mx-1 postfix/qmgr[999]: 4F2A81C2: from=<a@example.org>, size=1234, nrcpt=1 (queue active)")
add("<30>Nov 29 18:00:00 dhcp-1 dhcpd[555]: DHCPACK on 192.0.2.50 to 00:11:22:33:44:55 (laptop) via eth0")
add("<29>Nov 29 18:00:00 ns-1 named[777]: client @0x7f 192.0.2.1#53000 (example.org): query: example.org IN A +E(0) (192.0.2.53)")
add("<13>Nov 29 18:00:00 web-01 last message repeated 3 times")
add("<46>Nov 29 18:00:00 web-01 rsyslogd: [origin software=\"rsyslogd\" swVersion=\"8.2302.0\" x-pid=\"512\" x-info=\"https://www.rsyslog.com\"] start")
source("AIX syslogd forwarding format, which syslog-ng recognises (syslog-ng source, modules/syslogformat/syslog-format.c); values ours")
add("<13>Nov 29 18:00:00 Message forwarded from aix-1: syslogd: restart")
add("<13>Nov 29 18:00:00 Message forwarded from aix-2: sshd[99]: Accepted password for bob")

source("Cisco IOS System Message Logging configuration guides: seq no:timestamp: %FACILITY-SEV-MNEMONIC: text (cisco.com, 'Configuring System Message Logging'); values ours")
add("<189>36: *Mar  1 18:46:11: %SYS-5-CONFIG_I: Configured from console by vty2 (10.34.195.36)")
add("<189>37: *Mar  1 18:46:11.412: %SYS-5-CONFIG_I: Configured from console by console")
add("<187>38: Nov 29 18:00:00.123: %LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down")
add("<189>39: .Nov 29 18:00:00.123: %LINEPROTO-5-UPDOWN: Line protocol on Interface GigabitEthernet0/1, changed state to up")
add("<189>40: Nov 29 18:00:00.123 UTC: %LINEPROTO-5-UPDOWN: Line protocol on Interface Vlan1, changed state to down")
add("<189>41: *Nov 29 18:00:00.123 CET: %SYS-5-RESTART: System restarted --")
add("<189>42: rtr-1: *Nov 29 18:00:00.123: %SYS-5-CONFIG_I: Configured from console by admin on vty0 (192.0.2.9)")
add("<189>43: rtr-2: Nov 29 18:00:00: %LINK-5-CHANGED: Interface Serial0/0, changed state to administratively down")
add("<189>00:00:46: %LINK-3-UPDOWN: Interface Port-channel1, changed state to up")
add("<189>44: 00:00:47: %LINK-3-UPDOWN: Interface GigabitEthernet1/0/1, changed state to up")
add("<190>91810: Jan  9 02:38:47.872: %SEC-6-IPACCESSLOGP: list testlog permitted tcp 192.0.2.33(3438) -> 198.51.100.184(80), 1 packet")
source("Cisco NX-OS syslog (cisco.com, 'Cisco Nexus Configuring System Message Logging'): year first, zone, mnemonic; values ours")
add("<189>: 2026 Nov 29 18:00:00 UTC: %ETHPORT-5-IF_UP: Interface Ethernet1/1 is up in mode access")
add("<187>: 2026 Nov 29 18:00:01.123 UTC: %ETHPORT-3-IF_DOWN_LINK_FAILURE: Interface Ethernet1/2 is down (Link failure)")
add("<189>2026 Nov 29 18:00:02 nx-1 %VSHD-5-VSHD_SYSLOG_CONFIG_I: Configured from vty by admin on 192.0.2.4@pts/0")
source("Cisco ASA syslog ('Cisco ASA Series Syslog Messages', cisco.com): with and without the 'logging timestamp' date; values ours")
add("<166>Nov 29 2026 18:00:00: %ASA-6-302013: Built outbound TCP connection 123 for outside:198.51.100.1/443 (198.51.100.1/443) to inside:192.0.2.2/51000 (203.0.113.2/51000)")
add("<166>Nov 29 2026 18:00:00 asa-1 : %ASA-6-305011: Built dynamic TCP translation from inside:192.0.2.2/51000 to outside:203.0.113.2/51000")
add("<164>%ASA-4-106023: Deny tcp src outside:198.51.100.7/4444 dst inside:192.0.2.3/22 by access-group \"outside_in\" [0x0, 0x0]")
source("LinkSys-style stamp with the year after the time, which syslog-ng recognises (syslog-ng scan-timestamp.c); values ours")
add("<13>Nov 29 18:00:00 2026 wrt-1 kernel: DROP IN=vlan2 OUT= SRC=198.51.100.3 DST=203.0.113.1")
source("Juniper Junos structured-data format: <pri>1 time host process pid TAG [junos@2636.platform ...] text (juniper.net, 'Interpreting Messages Generated in Structured-Data Format'); values ours")
add('<165>1 2026-11-29T18:00:00.719Z router1 mgd 3046 UI_DBASE_LOGOUT_EVENT [junos@2636.1.1.1.2.18 username="regress"] User \'regress\' exiting configuration mode')
add('<28>1 2026-11-29T10:00:00.719-08:00 sw-1 chassisd 1234 CHASSISD_SNMP_TRAP7 [junos@2636.1.1.1.2.21 trap="jnxFruPowerOff" argument1="fru"] SNMP trap generated')
add('<14>1 2026-11-29T18:00:00.719Z fw-1 RT_FLOW - RT_FLOW_SESSION_CREATE [junos@2636.1.1.1.2.26 source-address="192.0.2.1" source-port="50000" destination-address="198.51.100.1" destination-port="443" service-name="junos-https" nat-source-address="203.0.113.1" nat-source-port="40000" protocol-id="6" policy-name="allow-web" source-zone-name="trust" destination-zone-name="untrust" session-id-32="1234"] session created')
source("VMware ESXi RFC 5424 with Originator@6876 SD (VMware docs, ESXi syslog); values ours")
add('<166>1 2026-11-29T18:00:00.123Z esx-01.example.org Hostd - - [Originator@6876 sub=Vimsvc.TaskManager opID=abc123 user=vpxuser] Task Completed : haTask-ha-host-vim.HostSystem.retrieveInternalCapability')
add('<167>1 2026-11-29T18:00:00.124Z esx-01.example.org Vpxa - - [Originator@6876 sub=vpxLro opID=x-1] [VpxLRO] -- FINISH lro-1')
source("FortiGate / FortiSIEM docs (docs.fortinet.com): key=value bodies without a syslog header, and the Cisco ISE sample's header; values ours")
add('<189>date=2026-11-29 time=18:00:00 devname="FGT-1" devid="FG100E" logid="0000000013" type="traffic" subtype="forward" level="notice" srcip=192.0.2.1 dstip=198.51.100.1 action="accept"')
add("<181>Nov 29 18:00:00 ise-psn01 CISE_Passed_Authentications 0000066354 3 0 2026-11-29 18:00:00.516 +01:00 2915312533 5200 NOTICE Passed-Authentication: Authentication succeeded")
source("MikroTik RouterOS remote logging (help.mikrotik.com, Log): topics instead of a tag; values ours")
add("<30>Nov 29 18:00:00 MikroTik system,info,account user admin logged in from 192.0.2.8 via winbox")
add("<30>Nov 29 18:00:00 MikroTik dhcp,info dhcp1 assigned 192.0.2.77 to 00:11:22:33:44:55")
source("pfSense filterlog over syslog, no hostname (docs.netgate.com, 'Raw Filter Log Format'); values ours")
add("<134>Nov 29 18:00:00 filterlog[1234]: 5,,,1000000103,igb1,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,198.51.100.4,192.0.2.1,51000,22,0,S,123,,64240,,mss")
source("Palo Alto PAN-OS syslog, CSV body after a BSD header (docs.paloaltonetworks.com, syslog field descriptions); values ours")
add("<14>Nov 29 18:00:00 PA-VM 1,2026/11/29 18:00:00,012345678901,TRAFFIC,end,2560,2026/11/29 18:00:00,192.0.2.1,198.51.100.1,0.0.0.0,0.0.0.0,allow-all,,,ssl,vsys1,trust,untrust")
source("HAProxy without a hostname, as it logs to a local socket (docs.haproxy.org, log-send-hostname); values ours")
add("<134>Nov 29 18:00:00 haproxy[1234]: 192.0.2.1:50000 [29/Nov/2026:18:00:00.000] fe be/s1 0/0/0/1/1 200 100 - - ---- 1/1/0/0/0 0/0 \"GET / HTTP/1.1\"")
source("Docker syslog logging driver, rfc5424micro and rfc3164 formats (docs.docker.com, syslog logging driver); values ours")
add("<30>1 2026-11-29T18:00:00.123456+01:00 web-01 docker/3f2a1b0c9d8e 4321 docker/3f2a1b0c9d8e - container says hi")
add("<30>Nov 29 18:00:00 web-01 docker/3f2a1b0c9d8e[4321]: container says hi")
source("Windows events through NXLog's to_syslog_ietf() with SD (docs.nxlog.co, xm_syslog); values ours")
add('<14>1 2026-11-29T18:00:00.000000+01:00 WIN-DC1 Microsoft-Windows-Security-Auditing 612 - [NXLOG@14506 EventReceivedTime="2026-11-29 18:00:01" SourceModuleName="eventlog" SourceModuleType="im_msvistalog" Keywords="9232379236109516800" EventType="AUDIT_SUCCESS" EventID="4624" TargetUserName="alice"] An account was successfully logged on.')
source("syslog-ng test suite style edge cases (syslog-ng OSE tests for the syslog-format module); values ours")
add("<7>Oct 11 22:14:15 fe80::1 app: ipv6 host")
add("<7>Oct 11 22:14:15 ::1 app: ipv6 loopback")
add("<7>Oct 11 22:14:15 2001:db8::1:2:3:4 app: ipv6 long")
add("<7>Oct 11 22:14:15 cafe: looks like ipv6 then a colon")
add("<7>Oct 11 22:14:15 host: not a host")
add("<7>Oct 11 22:14:15 host[x] not a host")
add("<7>Oct 11 22:14:15.123456 host app: frac")
add("<7>Oct 11 22:14:15,123 host app: comma frac")
add("<7>oct 11 22:14:15 host app: lowercase month")
add("<7>OCT 11 22:14:15 host app: uppercase month")
add("<7>Oct 11 22:14:15  host   app: extra spaces")

# ---------------------------------------------------------------- generated

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
HOSTS = [
    "web-01", "db-2.example.org", "192.0.2.17", "fe80::1", "2001:db8::5", "router1",
    "a", "HOST_9", "mx.mail.example.com", "x-y_z.q", "10.0.0.1", "node07",
]
APPS = ["sshd", "sudo", "CRON", "kernel", "systemd", "postfix/smtpd", "app", "nginx", "my-app_2", "java", "/usr/sbin/cron", "dhcpd"]
WORDS = ["started", "stopped", "user", "alice", "failed", "login", "from", "port", "ok", "retry",
         "connection", "closed", "by", "peer", "timeout", "disk", "full", "eth0", "up", "down"]
UTF8 = ["caf\u00e9", "\u65e5\u672c\u8a9e", "na\u00efve", "\u00fcber", "\u20ac5", "\U0001F600", "\u0431\u0443\u043a\u0432\u044b"]


def words(n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def body():
    kind = rng.randrange(10)
    if kind == 0:
        return words(rng.randint(1, 3)) + " " + rng.choice(UTF8)
    if kind == 1:
        return words(2) + ' quote " backslash \\ brackets [x] {y}'
    if kind == 2:
        return words(2) + "\tTAB\tseparated"
    return words(rng.randint(1, 8))


def pri():
    return rng.choice([0, 1, 7, 8, 13, 14, 30, 38, 78, 86, 134, 165, 187, 189, 191]) if rng.random() < 0.3 \
        else rng.randrange(192)


def iso(frac=None, offset=None, sep="T"):
    y = rng.choice([2003, 2019, 2024, 2026, 2027])
    m, d = rng.randint(1, 12), rng.randint(1, 28)
    hh, mm, ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    s = "%04d-%02d-%02d%s%02d:%02d:%02d" % (y, m, d, sep, hh, mm, ss)
    if frac is None:
        frac = rng.choice([0, 0, 1, 3, 6, 6, 9])
    if frac:
        s += "." + "".join(str(rng.randrange(10)) for _ in range(frac))
    if offset is None:
        offset = rng.choice(["Z", "Z", "+00:00", "+01:00", "-07:00", "+05:30", "-03:30", "+14:00", "-12:00"])
    return s + offset


def bsd(pad=" "):
    d = rng.randint(1, 28)
    day = ("%2d" % d).replace(" ", pad) if pad != "" else str(d)
    return "%s %s %02d:%02d:%02d" % (rng.choice(MONTHS), day, rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))


def sd_value():
    return rng.choice(["1", "high", "Application", "a b c", "", "x=y", "192.0.2.1", "caf\u00e9", "tab\there", "100%"])


def sd_element(i):
    sid = rng.choice(["exampleSDID@32473", "ex@32473", "a@1", "meta", "origin", "timeQuality", "my.dotted@1", "x-y_z@9999"])
    names = ["iut", "eventSource", "eventID", "class", "ip", "x", "y", "name.sub", "k%d" % i]
    params = "".join(' %s="%s"' % (rng.choice(names), sd_value()) for _ in range(rng.randint(0, 3)))
    return "[%s%s]" % (sid, params)


def nil_or(value):
    return "-" if rng.random() < 0.2 else value


# RFC 5424, every field combination.
source("generated: RFC 5424 header variants (PRI, fraction 0-9 digits, offsets, NILVALUEs, SD 0-3 elements, BOM)")
for i in range(420):
    ts = nil_or(iso())
    host, app = nil_or(rng.choice(HOSTS)), nil_or(rng.choice(APPS))
    procid = nil_or(str(rng.randint(1, 99999)))
    msgid = nil_or(rng.choice(["ID47", "UI_LOGIN", "-", "TCPIN", "m1"]))
    n_sd = rng.choice([0, 0, 1, 1, 2, 3])
    sd = "".join(sd_element(j) for j in range(n_sd)) or "-"
    msg = body()
    frame = ("<%d>1 %s %s %s %s %s %s" % (pri(), ts, host, app, procid, msgid, sd)).encode()
    r = rng.random()
    if r < 0.15:
        pass  # no MSG
    elif r < 0.3:
        frame += b" \xef\xbb\xbf" + msg.encode()
    else:
        frame += b" " + msg.encode()
    add(frame)

source("generated: RFC 5424 structured data with escaped ] \" \\ and other backslashes")
for i in range(120):
    esc = rng.choice(['a\\]b', 'say \\"hi\\"', 'c:\\\\dir', 'line\\n', '\\\\\\]\\"', 'end\\\\', '\\x41', 'mix \\] and \\" and \\\\'])
    frame = '<%d>1 %s h%d app - - [esc@32473 v="%s" w="%s"] escapes %d' % (pri(), iso(), i % 7, esc, sd_value(), i)
    add(frame)

source("generated: RFC 5424 repeated SD-IDs and PARAM-NAMEs, elements without params")
for i in range(60):
    kind = i % 4
    if kind == 0:
        sd = '[a@1 x="1" x="2"]'
    elif kind == 1:
        sd = '[a@1 x="1"][a@1 y="2"]'
    elif kind == 2:
        sd = '[origin ip="192.0.2.%d" ip="192.0.2.%d" ip="198.51.100.1"]' % (i, i + 1)
    else:
        sd = '[empty%d][b@1 z="3"]' % i
    add("<%d>1 %s host app - - %s repeated %d" % (pri(), iso(), sd, i))

source("generated: RFC 5424 unescaped ] inside a quoted SD value (ringest tolerates it)")
for i in range(20):
    add('<13>1 %s host app - - [a@1 x="a]b%d"] unescaped' % (iso(), i))

source("generated: RFC 5424 more SD params than ringest reads (130 params)")
for i in range(3):
    params = "".join(' p%d="%d"' % (k, k) for k in range(130 + i))
    add("<13>1 %s host app - - [big@1%s] many params" % (iso(), params))

source("generated: RFC 5424 header fields longer than the RFC's maxima (APP-NAME 48, PROCID 128, MSGID 32)")
for i in range(15):
    app = "a" * rng.choice([48, 49, 60])
    procid = "p" * rng.choice([128, 129, 140])
    msgid = "m" * rng.choice([32, 33, 40])
    add("<13>1 %s host %s %s %s - long fields" % (iso(), app, procid, msgid))

source("generated: RFC 5424 hostnames syslog-ng's hostname scanner refuses (':' outside IPv6, '[', over 255 bytes)")
for h in ["host:8080", "a:b", "srv[1]", "x" * 256, "h" * 300, "web:1:2"]:
    add("<13>1 %s %s app - - - odd host" % (iso(), h))
for h in ["fe80::1", "::1", "2001:db8::1", "h" * 255]:
    add("<13>1 %s %s app - - - ipv6 or 255" % (iso(), h))

source("generated: RFC 5424 timestamps: no offset, odd spellings, impossible dates, leap seconds")
for ts in [iso(offset=""), iso(offset="", frac=3), iso(sep=" ", offset="Z"), "2026-11-29T18:00:00.Z",
           "2026-11-29T18:00:00,123Z", "2026-13-01T00:00:00Z", "2026-11-31T00:00:00Z", "2026-02-29T12:00:00Z",
           "2024-02-29T12:00:00Z", "2026-11-29T24:00:00Z", "2026-12-31T23:59:60Z", "2026-11-29T18:00:00+23:59",
           "2026-11-29T18:00:00.000000001Z", "2026-11-29T18:00:00.1234567891234Z", "0000-01-01T00:00:00Z",
           "9999-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z"]:
    add("<13>1 %s host app - - - ts %s" % (ts, ts.replace(" ", "_")))

source("generated: RFC 5424 headers that break the grammar (both parsers should refuse)")
broken = [
    "<13>1 2026-11-29 host app - - - date only",
    "<13>1 2026-11-29T18:00:00+0530 host app - - - offset without colon",
    "<13>1 2026-11-29t18:00:00z host app - - - lowercase t",
    "<13>1 2026-11-29T18:00:00Z host app - -",
    "<13>1 2026-11-29T18:00:00Z host app -",
    "<13>1 2026-11-29T18:00:00Z host",
    "<13>1 -",
    "<13>1 ",
    "<13>1 - host app - - [bad sd",
    "<13>1 - host app - - [a@1 x=1] unquoted",
    "<13>1 - host app - - [a@1  x=\"1\"] two spaces",
    "<13>1 - host app - - [a@1 x=\"1\"",
    "<13>1 - host app - - [] empty",
    "<13>1 - host app - - -no space after nil",
    "<13>1 - host app - - [a@1 x=\"1\"]no space after sd",
    "<13>1 - host app - - x not sd",
    "<13>1 - host app - - [%s x=\"1\"] long id" % ("i" * 33),
    "<13>1 - host app - - [a@1 %s=\"1\"] long name" % ("n" * 33),
]
for i in range(40):
    add(broken[i % len(broken)] + ("" if i < len(broken) else " #%d" % i))

source("generated: VERSION other than 1, which both read as RFC 3164")
for v in ["2", "10", "0", "01", "1x"]:
    add("<13>%s 2026-11-29T18:00:00Z host app - - - version %s" % (v, v))

# RFC 3164.
source("generated: RFC 3164 BSD stamps, hosts, tags with and without pid, fractions")
for i in range(380):
    ts = bsd(rng.choice([" ", "0"]))
    if rng.random() < 0.15:
        ts += "." + "".join(str(rng.randrange(10)) for _ in range(rng.choice([1, 3, 6])))
    host = rng.choice(HOSTS)
    app = rng.choice(APPS)
    tag = rng.choice([app + ":", app + "[%d]:" % rng.randint(1, 65535), app, app + "[]:", app + ":"])
    if rng.random() < 0.2:
        frame = "<%d>%s %s %s" % (pri(), ts, tag, body())  # missing hostname
    else:
        frame = "<%d>%s %s %s %s" % (pri(), ts, host, tag, body())
    add(frame)

source("generated: RFC 3164 with ISO 8601 timestamps (T or space, fraction, offset or none)")
for i in range(180):
    ts = iso(sep=rng.choice(["T", "T", " "]), offset=rng.choice(["Z", "+01:00", "-05:00", ""]))
    host = rng.choice(HOSTS)
    tag = rng.choice(APPS) + rng.choice([":", "[%d]:" % rng.randint(1, 9999)])
    add("<%d>%s %s %s %s" % (pri(), ts, host, tag, body()))

source("generated: RFC 3164 with the day not padded (Feb 5), which only ringest reads as a date")
for i in range(40):
    d = rng.randint(1, 9)
    add("<%d>%s %d %02d:%02d:%02d %s %s: %s" % (pri(), rng.choice(MONTHS), d, rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                                               rng.choice(HOSTS), rng.choice(APPS), body()))

source("generated: Cisco IOS: sequence numbers, clock marks, mnemonic tags, zones, origin-id hosts")
MNEMONICS = ["%SYS-5-CONFIG_I", "%LINK-3-UPDOWN", "%LINEPROTO-5-UPDOWN", "%SEC-6-IPACCESSLOGP", "%DUAL-5-NBRCHANGE", "%OSPF-5-ADJCHG"]
for i in range(200):
    kind = i % 6
    seq = str(rng.randint(0, 999999))
    mark = rng.choice(["", "*", "."])
    ts = bsd(" ") + rng.choice(["", ".%03d" % rng.randrange(1000)])
    text = "%s: %s" % (rng.choice(MNEMONICS), body())
    p = rng.choice([187, 188, 189, 190, 191])
    if kind == 0:
        add("<%d>%s: %s%s: %s" % (p, seq, mark, ts, text))
    elif kind == 1:
        add("<%d>%s%s: %s" % (p, mark, ts, text))
    elif kind == 2:
        add("<%d>%s: %s%s %s: %s" % (p, seq, mark, ts, rng.choice(["UTC", "CET", "PST", "EDT", "AEST"]), text))
    elif kind == 3:
        add("<%d>%s: %s: %s%s: %s" % (p, seq, rng.choice(["rtr-1", "sw-core-2", "edge3"]), mark, ts, text))
    elif kind == 4:
        add("<%d>%s: %02d:%02d:%02d: %s" % (p, seq, rng.randint(0, 99), rng.randint(0, 59), rng.randint(0, 59), text))
    else:
        add("<%d>%s: %s" % (p, seq, text))

source("generated: Cisco NX-OS year-first stamps and ASA/PIX and LinkSys years")
for i in range(60):
    kind = i % 3
    y = rng.choice([2025, 2026])
    mon, d = rng.choice(MONTHS), rng.randint(1, 28)
    t = "%02d:%02d:%02d" % (rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
    if kind == 0:
        add("<189>: %d %s %02d %s UTC: %s: %s" % (y, mon, d, t, rng.choice(MNEMONICS), body()))
    elif kind == 1:
        add("<166>%s %02d %d %s: %%ASA-6-302013: %s" % (mon, d, y, t, body()))
    else:
        add("<13>%s %02d %s %d %s %s: %s" % (mon, d, t, y, rng.choice(HOSTS), rng.choice(APPS), body()))

source("generated: RFC 3164 without a timestamp: the tag right after the PRI")
for i in range(80):
    tag = rng.choice(APPS) + rng.choice([":", "[%d]:" % rng.randint(1, 9999), ""])
    add("<%d>%s %s" % (pri(), tag, body()))

source("generated: priorities: every PRI 0-191, out of range 192-999, leading zeros, malformed")
for p in range(192):
    add("<%d>Nov 29 18:00:00 host app: pri %d" % (p, p))
for p in [192, 193, 200, 255, 256, 500, 767, 999]:
    add("<%d>Nov 29 18:00:00 host app: pri %d" % (p, p))
    add("<%d>1 2026-11-29T18:00:00Z host app - - - pri %d" % (p, p))
for p in ["013", "0013", "00", "000", "0191"]:
    add("<%s>Nov 29 18:00:00 host app: leading zeros %s" % (p, p))
for p in ["", "-1", "1a", "x", "12345", "1000", "99999999999"]:
    add("<%s>Nov 29 18:00:00 host app: malformed pri %s" % (p, p))
add("<13 Nov 29 18:00:00 host app: unterminated pri")
add("<")
add("<13")

source("generated: frames without a PRI")
for i in range(30):
    add(rng.choice(["Nov 29 18:00:00 host app: ", "", "hello ", "1 2026-11-29T18:00:00Z h a - - - "]) + body() + " nopri%d" % i)

source("generated: non-UTF-8 bytes in every field")
for i in range(80):
    bad = rng.choice([b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80", b"\xe9t\xe9", b"\x80abc", b"ok\xf0\x9f\x98"])
    kind = i % 5
    if kind == 0:
        add(b"<13>Nov 29 18:00:00 host app: msg " + bad + b" end")
    elif kind == 1:
        add(b"<13>Nov 29 18:00:00 ho" + bad + b"st app: bad host")
    elif kind == 2:
        add(b"<13>Nov 29 18:00:00 host ap" + bad + b"p[1]: bad app")
    elif kind == 3:
        add(b"<13>1 2026-11-29T18:00:00Z host app - - [a@1 x=\"" + bad + b"\"] bad sd " + bad)
    else:
        add(b"<13>1 2026-11-29T18:00:00Z ho" + bad + b" ap" + bad + b" p" + bad + b" m" + bad + b" - " + bad)

source("generated: control bytes, NUL, CR, LF inside and at the end of frames")
for i in range(40):
    c = rng.choice([b"\x00", b"\r", b"\n", b"\x01", b"\x1b[31m", b"\x7f", b"\r\n", b"\n\n", b"\x00\x00"])
    kind = i % 4
    if kind == 0:
        add(b"<13>Nov 29 18:00:00 host app: inside" + c + b"frame")
    elif kind == 1:
        add(b"<13>Nov 29 18:00:00 host app: at end" + c)
    elif kind == 2:
        add(b"<13>1 2026-11-29T18:00:00Z host app - - - inside" + c + b"frame")
    else:
        add(b"<13>1 2026-11-29T18:00:00Z host app - - - at end" + c)

source("generated: the BOM in RFC 5424 MSG (alone, twice, in RFC 3164 where it is just bytes)")
for i in range(12):
    kind = i % 4
    if kind == 0:
        add(b"<13>1 2026-11-29T18:00:00Z host app - - - \xef\xbb\xbf")
    elif kind == 1:
        add(b"<13>1 2026-11-29T18:00:00Z host app - - - \xef\xbb\xbf\xef\xbb\xbftwo BOMs")
    elif kind == 2:
        add(b"<13>Nov 29 18:00:00 host app: \xef\xbb\xbfbom in 3164")
    else:
        add(b"<13>1 - - - - - - \xef\xbb\xbf" + UTF8[i % len(UTF8)].encode())

source("generated: RFC 3164 hostnames: IPv6, near the 255-byte limit, odd bytes")
for h in ["fe80::1", "::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "abcd1:2", "cafe:", "h" * 254, "h" * 255, "h" * 256,
          "host.with.many.dots", "UPPER", "under_score", "a@b", "a/b", "a\\b", "a=b"]:
    add("<13>Nov 29 18:00:00 %s app: host %d" % (h, len(h)))

source("generated: tags: empty, unterminated pid, long, special characters")
for tag in ["app[]:", "app[123:", "app[123", "app[12 3]:", ": empty tag", "a" * 300 + ":", "app]:", "app:[1]",
            "-", "app[1][2]:", "app:no space", "app::double"]:
    add("<13>Nov 29 18:00:00 host %s msg" % tag)

while sum(1 for l in lines if not l.startswith(b"#")) < 2000:
    source("generated: filler, mixed")
    for _ in range(50):
        add("<%d>%s %s %s[%d]: %s" % (pri(), bsd(), rng.choice(HOSTS), rng.choice(APPS), rng.randint(1, 99999), body()))

header = b"""# ringest parse corpus (issue 14): one frame per line, sent through
# syslog-ng 3.38 and through ringest's parser by tests/parse_diff.rs.
# Written by tests/parse_diff/gen_corpus.py: edit that, not this file.
# '#@ source:' names where the lines below it come from. A line starting
# with '~' is escaped (\\xNN, \\\\); every other line is the frame as is.
"""
with open(OUT, "wb") as f:
    f.write(header)
    for l in lines:
        f.write(l + b"\n")
count = sum(1 for l in lines if not l.startswith(b"#"))
print("%d frames written to %s" % (count, OUT))
