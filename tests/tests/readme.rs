//! The README, executed: its shell blocks run in order, in one bash
//! session in a scratch directory, against the real binaries, and what
//! they print is checked against the output the README shows. The whole
//! walkthrough runs twice in the same directory, because a reader may
//! follow it again on a log that already holds events.
//!
//! Conventions the README follows (so a reader sees ordinary shell):
//! - Comment lines `# ...` right after a command (no blank line between)
//!   are its output; `...` stands for anything. Every such line must
//!   appear, in order, in what the commands since the previous check
//!   printed (stdout and stderr). Other comments are prose.
//! - An HTML comment before a block says how to run it:
//!   `<!-- readme-test: background NAME ready=URL -->` runs it in the
//!   background (as in a second terminal) until `stop NAME`, once URL
//!   answers 2xx (or, for `tcp://HOST:PORT`, accepts a connection);
//!   `<!-- readme-test: stop NAME -->` stands for Ctrl-C in that terminal;
//!   `<!-- readme-test: skip -->` leaves a block out (the test command
//!   itself, the benchmark).
//! - The only rewriting: `cargo run --release --bin X --` and
//!   `./target/release/X` run the binaries this test suite built, and the
//!   ports 7380 and 7381 become free ones (in the text, and through
//!   `VELLUM_LISTEN`, `VELLUM_URL` and `VELLUM_WITNESS_LISTEN` for the defaults).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Run,
    Skip,
    Background { name: String, ready: String },
    Stop(String),
}

#[derive(Debug, Clone)]
struct Block {
    mode: Mode,
    code: Vec<String>,
    line: usize,
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut pending = Mode::Run;
    let mut lines = readme.lines().enumerate();
    while let Some((n, l)) = lines.next() {
        let t = l.trim();
        if let Some(a) = t
            .strip_prefix("<!-- readme-test:")
            .and_then(|r| r.strip_suffix("-->"))
        {
            let words: Vec<&str> = a.split_whitespace().collect();
            pending = match words.as_slice() {
                ["skip"] => Mode::Skip,
                ["stop", name] => {
                    out.push(Block {
                        mode: Mode::Stop(name.to_string()),
                        code: vec![],
                        line: n + 1,
                    });
                    Mode::Run
                }
                ["background", name, ready] => Mode::Background {
                    name: name.to_string(),
                    ready: ready.strip_prefix("ready=").expect("ready=URL").to_string(),
                },
                other => panic!(
                    "README line {}: unknown readme-test annotation {other:?}",
                    n + 1
                ),
            };
            continue;
        }
        if t == "```sh" {
            let mut code = Vec::new();
            for (_, l) in lines.by_ref() {
                if l.trim() == "```" {
                    break;
                }
                code.push(l.to_string());
            }
            out.push(Block {
                mode: std::mem::replace(&mut pending, Mode::Run),
                code,
                line: n + 1,
            });
        }
    }
    out
}

/// Splits a block into (commands, expected output lines) segments.
fn segments(code: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut cmd = String::new();
    let mut expect: Vec<String> = Vec::new();
    let mut prev_was_code = false;
    for l in code {
        let t = l.trim_start();
        let is_comment = t.starts_with('#');
        if is_comment && (prev_was_code || !expect.is_empty()) {
            expect.push(t.trim_start_matches('#').trim_start().to_string());
            continue;
        }
        if !expect.is_empty() {
            out.push((std::mem::take(&mut cmd), std::mem::take(&mut expect)));
        }
        cmd.push_str(l);
        cmd.push('\n');
        prev_was_code = !is_comment && !t.is_empty();
    }
    if !cmd.trim().is_empty() || !expect.is_empty() {
        out.push((cmd, expect));
    }
    out
}

/// Does `line` match `pattern`, where `...` stands for anything?
fn matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    if parts.len() == 1 {
        return line.trim_end() == pattern.trim_end();
    }
    let mut rest = line;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return p.is_empty() || rest.trim_end().ends_with(p.trim_end());
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

struct Shell {
    child: Child,
    stdin: ChildStdin,
    out: mpsc::Receiver<String>,
    n: u64,
}

impl Shell {
    fn start(dir: &Path, ports: (u16, u16)) -> Shell {
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(dir)
            .envs(listen_env(ports))
            .env_remove("VELLUM_TOKEN")
            .env("TERM", "dumb")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("bash");
        let mut stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        stdin.write_all(b"exec 2>&1\n").unwrap();
        Shell {
            child,
            stdin,
            out: rx,
            n: 0,
        }
    }

    /// Runs `cmd`; returns its output lines and exit status.
    fn run(&mut self, cmd: &str) -> (Vec<String>, i32) {
        self.n += 1;
        let marker = format!("__readme_test_done_{}__", self.n);
        self.stdin
            .write_all(format!("{cmd}\n__rc=$?; echo; echo {marker} $__rc\n").as_bytes())
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.out.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "timed out running:\n{cmd}\noutput so far:\n{}",
                    lines.join("\n")
                )
            });
            if let Some(code) = l.strip_prefix(&format!("{marker} ")) {
                if lines.last().is_some_and(|l: &String| l.is_empty()) {
                    lines.pop();
                }
                return (lines, code.trim().parse().unwrap_or(-1));
            }
            lines.push(l);
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Background {
    name: String,
    child: Child,
    log: PathBuf,
}

fn stop(b: &mut Background) {
    // Like Ctrl-C in its terminal: SIGINT to the whole process group.
    let pgid = b.child.id() as i32;
    // SAFETY: kill(2) on a process group this test created.
    unsafe {
        libc::kill(-pgid, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = b.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = b.child.wait();
}

/// The default listen addresses, moved to the test's ports.
fn listen_env(ports: (u16, u16)) -> [(&'static str, String); 3] {
    [
        ("VELLUM_LISTEN", format!("127.0.0.1:{}", ports.0)),
        ("VELLUM_URL", format!("http://127.0.0.1:{}", ports.0)),
        ("VELLUM_WITNESS_LISTEN", format!("127.0.0.1:{}", ports.1)),
    ]
}

fn rewrite(code: &str, ports: (u16, u16)) -> String {
    let mut s = code.to_string();
    for name in ["vellum-witness", "vellum-verify", "vellum"] {
        s = s.replace(
            &format!("cargo run --release --bin {name} --"),
            &format!("./target/release/{name}"),
        );
    }
    s = s.replace("cargo build --release", "true");
    s.replace("7380", &ports.0.to_string())
        .replace("7381", &ports.1.to_string())
}

fn walk(readme: &str, dir: &Path, ports: (u16, u16), pass: usize) {
    let mut shell = Shell::start(dir, ports);
    let mut bg: Vec<Background> = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for b in blocks(readme) {
            match &b.mode {
                Mode::Skip => {}
                Mode::Stop(name) => {
                    let i = bg.iter().position(|x| &x.name == name).unwrap_or_else(|| {
                        panic!("README line {}: nothing named {name} runs", b.line)
                    });
                    let mut x = bg.remove(i);
                    stop(&mut x);
                }
                Mode::Background { name, ready } => {
                    let code = rewrite(&b.code.join("\n"), ports);
                    let ready = rewrite(ready, ports);
                    let log = dir.join(format!("{name}-{pass}.log"));
                    use std::os::unix::process::CommandExt;
                    let child = Command::new("bash")
                        .args(["--noprofile", "--norc", "-c", &code])
                        .current_dir(dir)
                        .envs(listen_env(ports))
                        .env_remove("VELLUM_TOKEN")
                        .stdin(Stdio::null())
                        .stdout(std::fs::File::create(&log).unwrap())
                        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
                        .process_group(0)
                        .spawn()
                        .unwrap();
                    let mut x = Background {
                        name: name.clone(),
                        child,
                        log,
                    };
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let ok = match ready.strip_prefix("tcp://") {
                            Some(addr) => std::net::TcpStream::connect(addr).is_ok(),
                            None => reqwest::blocking::get(&ready)
                                .is_ok_and(|r| r.status().is_success()),
                        };
                        if ok {
                            break;
                        }
                        if let Ok(Some(st)) = x.child.try_wait() {
                            panic!(
                                "README line {}: `{code}` exited ({st}):\n{}",
                                b.line,
                                std::fs::read_to_string(x.log.with_extension("err"))
                                    .unwrap_or_default()
                            );
                        }
                        if Instant::now() > deadline {
                            stop(&mut x);
                            panic!("README line {}: {ready} never answered", b.line);
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    bg.push(x);
                }
                Mode::Run => {
                    for (cmd, expect) in segments(&b.code) {
                        let cmd = rewrite(&cmd, ports);
                        let (out, code) = shell.run(&cmd);
                        let shown = || {
                            format!(
                                "pass {pass}, README block at line {}:\n{cmd}\nprinted:\n{}",
                                b.line,
                                out.join("\n")
                            )
                        };
                        assert_eq!(code, 0, "exit status {code}; {}", shown());
                        let mut at = 0;
                        for e in &expect {
                            let e = rewrite(e, ports);
                            match out[at..].iter().position(|l| matches(&e, l)) {
                                Some(i) => at += i + 1,
                                None => panic!("expected a line like {e:?}; {}", shown()),
                            }
                        }
                    }
                }
            }
        }
    }));
    for mut x in bg.drain(..) {
        stop(&mut x);
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn the_readme_walkthrough_works_in_order_twice() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let bins = vellum_tests::bin("vellum").parent().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    for link in ["scripts", "examples"] {
        std::os::unix::fs::symlink(
            root.join(link).canonicalize().unwrap(),
            dir.path().join(link),
        )
        .unwrap();
    }
    std::fs::create_dir(dir.path().join("target")).unwrap();
    std::os::unix::fs::symlink(&bins, dir.path().join("target/release")).unwrap();
    let ports = (vellum_tests::free_port(), vellum_tests::free_port());
    for pass in 1..=2 {
        walk(&readme, dir.path(), ports, pass);
    }
}

#[test]
fn the_matcher_and_the_segmenter() {
    assert!(matches(
        "OK: entry ... is in ... at size ...",
        "OK: entry 3 is in localhost/vellum at size 4 (root x)"
    ));
    assert!(!matches("OK: entry ...", "FAIL: entry"));
    assert!(matches("exit 1", "exit 1"));
    assert!(!matches("exit 1", "exit 0"));
    assert!(matches("...", "anything"));
    let code: Vec<String> = "# prose\na\n# out1\n# out2\n\n# prose\nb\nc\n# out3\nd"
        .lines()
        .map(String::from)
        .collect();
    let s = segments(&code);
    assert_eq!(s.len(), 3, "{s:?}");
    assert_eq!(s[0].1, vec!["out1", "out2"]);
    assert!(s[1].0.contains("b\nc\n") && s[1].1 == vec!["out3"]);
    assert_eq!(s[2].0.trim(), "d");
}
