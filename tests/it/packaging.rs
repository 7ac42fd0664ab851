//! Packaging: the systemd units verify and agree with the Postfix and Sendmail recipes,
//! the .deb metadata points at files that exist, man pages and completions generate,
//! and every command's --help carries an example.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn rebound() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rebound"));
    c.env_remove("REBOUND_CONFIG").env_remove("REBOUND_DB");
    c
}

/// Where the recipes and the units must agree: the LMTP listeners.
const TCP: &str = "127.0.0.1:2424";
const SOCKET: &str = "/run/rebound/lmtp.sock";
const EXEC: &str = "/usr/bin/rebound serve --config /etc/rebound/rebound.toml --db /var/lib/rebound/rebound.db";

#[test]
fn units_and_recipes_agree_on_listeners() {
    let service = read("packaging/systemd/rebound.service");
    let socket = read("packaging/systemd/rebound.socket");
    for line in ["Type=notify", &format!("ExecStart={EXEC}"), "StateDirectory=rebound", "ProtectSystem=strict",
        "NoNewPrivileges=yes", "Requires=rebound.socket", "User=rebound", "WorkingDirectory=/var/lib/rebound"]
    {
        assert!(service.lines().any(|l| l == line), "rebound.service lacks {line}");
    }
    for line in [format!("ListenStream={TCP}"), format!("ListenStream={SOCKET}")] {
        assert!(socket.lines().any(|l| l == line), "rebound.socket lacks {line}");
    }
    // Postfix: the transport's nexthops use the master.cf service, on the unit's listeners.
    let master = read("packaging/postfix/master.cf");
    assert!(master.lines().any(|l| l.starts_with("rebound ") && l.trim_end().ends_with(" lmtp")), "{master}");
    let transport = read("packaging/postfix/transport");
    assert!(transport.contains(&format!("rebound:inet:{TCP}")), "{transport}");
    assert!(transport.contains(&format!("rebound:unix:{SOCKET}")), "{transport}");
    // Sendmail: the mailers connect to the same listeners.
    let mc = read("packaging/sendmail/rebound.mc");
    assert!(mc.contains(&format!("A=FILE {SOCKET}")), "{mc}");
    assert!(mc.contains("A=TCP $h 2424"), "{mc}");
    let mailertable = read("packaging/sendmail/mailertable");
    assert!(mailertable.contains("rebound:localhost") && mailertable.contains("reboundtcp:[127.0.0.1]"));
}

#[test]
fn service_command_line_parses() {
    // clap rejects an unknown option before it gets to --help.
    let args: Vec<&str> = EXEC.split(' ').skip(1).chain(["--help"]).collect();
    let out = rebound().args(&args).output().expect("run rebound");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn systemd_units_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("NOTICE: systemd-analyze not found; unit verification skipped");
        return;
    };
    assert!(probe.status.success());
    let tmp = tempfile::tempdir().expect("tempdir");
    let service = read("packaging/systemd/rebound.service")
        .replace("/usr/bin/rebound", env!("CARGO_BIN_EXE_rebound"));
    std::fs::write(tmp.path().join("rebound.service"), service).expect("write unit");
    std::fs::copy(repo("packaging/systemd/rebound.socket"), tmp.path().join("rebound.socket")).expect("copy");
    // --man=no: the man page is installed only by the .deb (.ci/deb.sh verifies it there).
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(tmp.path().join("rebound.socket"))
        .arg(tmp.path().join("rebound.service"))
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn deb_metadata_points_at_real_files() {
    let cargo: toml::Value = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml");
    let deb = &cargo["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("assets");
    let mut dests = Vec::new();
    for a in assets {
        let (src, dest) = (a[0].as_str().expect("src"), a[1].as_str().expect("dest"));
        dests.push(dest.to_string());
        if src.starts_with("target/") {
            continue; // built by packaging/build-deb.sh
        }
        let found = if let Some(dir) = src.strip_suffix("/*") {
            repo(dir).read_dir().map(|mut d| d.next().is_some()).unwrap_or(false)
        } else {
            repo(src).is_file()
        };
        assert!(found, "deb asset {src} missing");
    }
    for want in ["usr/bin/", "etc/rebound/rebound.toml", "usr/share/man/man1/"] {
        assert!(dests.iter().any(|d| d == want), "deb lacks {want}");
    }
    assert_eq!(deb["conf-files"][0].as_str(), Some("/etc/rebound/rebound.toml"));
    let units = deb["systemd-units"]["unit-scripts"].as_str().expect("unit-scripts");
    assert!(repo(units).join("rebound.service").is_file() && repo(units).join("rebound.socket").is_file());
    let scripts = repo(deb["maintainer-scripts"].as_str().expect("maintainer-scripts"));
    // cargo-deb replaces every #DEBHELPER# (even one in a comment) with its unit handling.
    let postinst = std::fs::read_to_string(scripts.join("postinst")).expect("postinst");
    assert_eq!(postinst.matches("#DEBHELPER#").count(), 1, "postinst needs exactly one #DEBHELPER#");
    assert!(postinst.contains("useradd --system") && postinst.contains("/var/lib/rebound"), "{postinst}");
    // The example config shipped as a conffile is valid for this binary.
    rebound::config::Config::from_toml(&read("packaging/rebound.toml")).expect("packaging/rebound.toml");
}

#[test]
fn man_pages_and_completions_generate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let man = tmp.path().join("man");
    let out = rebound().args(["generate", "man"]).arg(&man).output().expect("generate man");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(man.join("rebound.1")).expect("rebound.1");
    assert!(page.contains(".TH rebound 1") && page.contains("serve"), "{page}");
    let serve = std::fs::read_to_string(man.join("rebound-serve.1")).expect("rebound-serve.1");
    assert!(serve.contains(".TH rebound-serve"), "{serve}");
    for (shell, file, needle) in [("bash", "rebound.bash", "_rebound"), ("zsh", "_rebound", "#compdef rebound"),
        ("fish", "rebound.fish", "complete -c rebound")]
    {
        let dir = tmp.path().join(shell);
        let out = rebound().args(["generate", "completions", shell]).arg(&dir).output().expect("completions");
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{shell} {file}: {e}"));
        assert!(text.contains(needle), "{shell} completion lacks {needle}");
    }
    let bad = rebound().args(["generate", "completions", "tcsh", "x"]).output().expect("run");
    assert_eq!(bad.status.code(), Some(2), "an unknown shell is a usage error");
}

/// The subcommand names listed under "Commands:" in a --help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_help_has_an_example() {
    let mut missing = Vec::new();
    let mut todo: Vec<Vec<String>> = vec![vec![], vec!["generate".into()]];
    while let Some(path) = todo.pop() {
        let out = rebound().args(&path).arg("--help").output().expect("--help");
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "rebound {} --help failed", path.join(" "));
        let subs = subcommands(&help);
        // A group's examples live on its subcommands; the top level has its own.
        if (path.is_empty() || subs.is_empty()) && !help.contains("Example") {
            missing.push(format!("rebound {}", path.join(" ")));
        }
        for sub in subs {
            todo.push(path.iter().cloned().chain([sub]).collect());
        }
    }
    assert!(missing.is_empty(), "--help without an example section: {missing:?}");
}

#[test]
fn sendmail_recipe_builds_with_m4() {
    let cf_m4 = Path::new("/usr/share/sendmail/cf/m4/cf.m4");
    if !cf_m4.exists() || Command::new("m4").arg("--version").output().is_err() {
        eprintln!("NOTICE: sendmail-cf or m4 not installed; Sendmail recipe check skipped");
        return;
    }
    // A minimal sendmail.mc with the recipe's parts where its README puts them.
    let recipe = read("packaging/sendmail/rebound.mc");
    let features: String = recipe.lines().filter(|l| l.starts_with("FEATURE(")).map(|l| format!("{l}\n")).collect();
    let definitions = &recipe[recipe.find("MAILER_DEFINITIONS").expect("MAILER_DEFINITIONS")..];
    let mc = format!(
        "include(`{}')dnl\nOSTYPE(`linux')dnl\n{features}MAILER(`local')dnl\nMAILER(`smtp')dnl\n{definitions}",
        cf_m4.display()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("test.mc"), mc).expect("write mc");
    let out = Command::new("m4").arg(tmp.path().join("test.mc")).output().expect("m4");
    let cf = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "m4: {}", String::from_utf8_lossy(&out.stderr));
    assert!(cf.lines().any(|l| l.starts_with("Kmailertable ")), "no mailertable map in the cf");
    for (mailer, args) in [("rebound", format!("A=FILE {SOCKET}")), ("reboundtcp", "A=TCP $h 2424".to_string())] {
        let def: String = cf
            .lines()
            .skip_while(|l| !l.starts_with(&format!("M{mailer},")))
            .take_while(|l| l.starts_with(&format!("M{mailer},")) || l.starts_with('\t'))
            .collect();
        assert!(def.contains("P=[IPC]") && def.contains(&args), "mailer {mailer} in the cf: {def:?}");
        let flags = def.split("F=").nth(1).and_then(|f| f.split(',').next()).unwrap_or("");
        assert!(flags.contains('z'), "mailer {mailer} lacks F=z (LMTP): {flags}");
    }
}

/// The system calls the unit's `SystemCallFilter=` lines let through (systemd semantics:
/// the first line decides allow- or deny-list; later lines add to or take from it; the
/// @default group is always allowed). None for a deny-list unit.
fn unit_allowed_syscalls(unit: &str, groups: &std::collections::HashMap<String, Vec<String>>) -> Option<std::collections::HashSet<String>> {
    fn expand(name: &str, groups: &std::collections::HashMap<String, Vec<String>>, out: &mut std::collections::HashSet<String>) {
        match groups.get(name) {
            Some(members) => members.iter().for_each(|m| expand(m, groups, out)),
            None => assert!(!name.starts_with('@'), "unknown syscall group {name}"),
        }
        if !name.starts_with('@') {
            out.insert(name.to_string());
        }
    }
    let mut allowed: Option<std::collections::HashSet<String>> = None;
    for value in unit.lines().filter_map(|l| l.strip_prefix("SystemCallFilter=")) {
        let (deny, list) = match value.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        let mut set = std::collections::HashSet::new();
        list.split_whitespace().for_each(|n| expand(n, groups, &mut set));
        match allowed.as_mut() {
            None if deny => return None,
            None => {
                expand("@default", groups, &mut set);
                allowed = Some(set);
            }
            Some(a) if deny => a.retain(|n| !set.contains(n)),
            Some(a) => a.extend(set),
        }
    }
    allowed
}

/// `systemd-analyze syscall-filter`: every group and its members (syscalls or groups).
fn syscall_groups() -> Option<std::collections::HashMap<String, Vec<String>>> {
    let out = Command::new("systemd-analyze").args(["syscall-filter", "--no-pager"]).output().ok()?;
    let mut groups = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(name) = line.strip_prefix('@') {
            current = Some(format!("@{}", name.trim()));
            groups.insert(format!("@{}", name.trim()), Vec::new());
        } else if let (Some(g), member) = (current.as_ref(), line.trim()) {
            if !member.is_empty() && !member.starts_with('#') {
                groups.get_mut(g).expect("group").push(member.to_string());
            }
        }
        if line.trim().is_empty() {
            current = None;
        }
    }
    Some(groups)
}

/// A DSN for one failed recipient (CRLF line ends).
const DSN: &[u8] = b"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces@bounces.example.test\r\nSubject: Undelivered Mail\r\n\
    Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nfailed\r\n--b\r\n\
    Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; gone@example.org\r\n\
    Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n--b--\r\n";

#[test]
fn service_syscall_filter_allows_every_call_serve_makes() {
    // A system call the unit's filter denies kills serve with SIGSYS (no errno is set),
    // and only under systemd: run serve under strace through a delivery and a drain, and
    // check every call against the filter.
    let Some(groups) = syscall_groups().filter(|g| g.contains_key("@system-service")) else {
        eprintln!("NOTICE: systemd-analyze not found; syscall filter check skipped");
        return;
    };
    if Command::new("strace").arg("-V").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "strace missing (the CI installs it)");
        eprintln!("NOTICE: strace not found; syscall filter check skipped");
        return;
    }
    let unit = read("packaging/systemd/rebound.service");
    let allowed = unit_allowed_syscalls(&unit, &groups).expect("an allow-list filter");
    // LimitNICE=+N is the raw limit 20 - N (what lets serve raise its store threads again).
    let nice_limit = unit.lines().filter_map(|l| l.strip_prefix("LimitNICE=+")).find_map(|n| n.trim().parse::<u64>().ok()).map(|n| 20 - n);
    // SAFETY: geteuid(2) has no arguments.
    let nice_limit = nice_limit.filter(|_| unsafe { libc::geteuid() } == 0);
    let tmp = tempfile::tempdir().expect("tempdir");
    let trace = tmp.path().join("trace");
    // The metrics endpoint too (its listener and its HTTP exchange).
    let metrics_port = crate::postfix_e2e::harness::free_port();
    let config = tmp.path().join("rebound.toml");
    std::fs::write(&config, format!("[metrics]\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n")).expect("config");
    let mut serve = crate::postfix_e2e::server::Rebound::traced(tmp.path(), &tmp.path().join("r.db"), &config, &trace, nice_limit);
    let mut lmtp = crate::lmtp::support::Client::connect(&format!("127.0.0.1:{}", serve.port));
    lmtp.reply();
    lmtp.cmd("LHLO t");
    let done = lmtp.deliver(&["bounces@bounces.example.test"], DSN);
    assert!(done[0].starts_with("250 "), "{done:?}: {}", serve.log());
    let metrics = crate::lmtp::support::http_get(&format!("127.0.0.1:{metrics_port}"), "/metrics");
    assert!(metrics.contains("rebound_spool_store_raised_total"), "{metrics}");
    assert!(serve.stop(), "serve did not drain cleanly: {}", serve.log());
    let text = std::fs::read_to_string(&trace).expect("trace");
    let mut used = std::collections::BTreeSet::new();
    for line in text.lines() {
        // "PID  name(args) = result" ("<... name resumed>", signals and exits are skipped)
        let call = line.split_once(char::is_whitespace).map_or("", |(_, rest)| rest.trim_start());
        let name: String = call.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() && call[name.len()..].starts_with('(') {
            used.insert(name);
        }
    }
    assert!(used.contains("fdatasync") && used.contains("accept4"), "the trace misses serve's work: {used:?}");
    assert!(used.contains("sched_setscheduler"), "the store threads' priority was never set: {used:?}");
    let denied: Vec<_> = used.iter().filter(|n| !allowed.contains(*n)).collect();
    assert!(denied.is_empty(), "rebound.service's SystemCallFilter kills serve on {denied:?}");
}
