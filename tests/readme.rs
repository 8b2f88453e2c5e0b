//! The README's quick start, run as written against `herald all` started the
//! way `make run` starts it (SQLite and generated credentials in `.herald/`,
//! `HERALD_ALLOW_CIDRS=127.0.0.0/8`), with a real receiver answering 200, so
//! the README cannot drift from the product again.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use herald_tests::{HeraldProcess, NatsServer, Received, Receiver, signatures};

/// The HTML comment that marks the quick-start block in README.md.
const MARKER: &str = "<!-- quickstart";
/// The README's stand-in for the reader's receiver.
const EXAMPLE_URL: &str = "https://hooks.example.com/herald";
/// What the quick start's commands print and later commands take, by prefix.
const PLACEHOLDERS: [&str; 6] = ["org_", "hrld_", "dev_", "ep_", "evt_", "whsec_"];

/// The command lines of the fenced block right after the marker.
fn quickstart() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let marked = readme
        .find(MARKER)
        .map(|at| &readme[at..])
        .expect("README.md has no `<!-- quickstart` marker");
    let after_comment = &marked[marked.find("-->").expect("the marker comment is closed") + 3..];
    let block = after_comment
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("a ```sh block follows the quickstart marker");
    let block = &block[..block.find("```").expect("the quickstart block is closed")];
    block
        .lines()
        .map(|line| without_comment(line.trim()))
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `line` without its trailing comment: a `#` that starts a word outside
/// quotes, as bash reads it. Placeholders in comments are prose.
fn without_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, character) in line.char_indices() {
        match (quote, character) {
            (None, '\'' | '"') => quote = Some(character),
            (Some(open), _) if character == open => quote = None,
            (None, '#') if previous.is_whitespace() => return line[..at].trim_end(),
            _ => {}
        }
        previous = character;
    }
    line
}

/// Every value that starts with `prefix` in `text`, in order.
fn values_with_prefix(text: &str, prefix: &str) -> Vec<String> {
    let allowed = |character: char| match prefix {
        "whsec_" => character.is_ascii_alphanumeric() || "+/=".contains(character),
        "hrld_" => character.is_ascii_alphanumeric() || "_-".contains(character),
        _ => character.is_ascii_alphanumeric(),
    };
    let mut found = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        let starts_word = text[..at]
            .chars()
            .last()
            .is_none_or(|before| !before.is_ascii_alphanumeric() && before != '_');
        let value: String = text[at + prefix.len()..]
            .chars()
            .take_while(|c| allowed(*c))
            .collect();
        if starts_word && !value.is_empty() {
            found.push(format!("{prefix}{value}"));
        }
    }
    found
}

/// `value` as one shell word.
fn shell_word(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.,+/=:".contains(c))
    {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The shell a reader types the quick start into: in the repository as
/// `make run` leaves it (`.herald/`, and heraldctl in `target/debug/`), with
/// a HOME of its own, so `heraldctl login` writes there.
struct Shell {
    dir: PathBuf,
    home: PathBuf,
    config_addr: String,
    ingest_addr: String,
    /// The `export` lines run so far, which every later command inherits.
    exports: Vec<String>,
}

impl Shell {
    fn run(&mut self, line: &str) -> Output {
        let script = self
            .exports
            .iter()
            .chain(std::iter::once(&line.to_owned()))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        let mut command = Command::new("bash");
        for (key, _) in std::env::vars() {
            if key.starts_with("HERALD") || key == "XDG_CONFIG_HOME" || key == "CARGO_TARGET_DIR" {
                command.env_remove(key);
            }
        }
        let output = command
            .args(["-e", "-o", "pipefail", "-c", &script])
            .current_dir(&self.dir)
            .env("HOME", &self.home)
            // make run listens on 7070 and 7080; this stack has free ports.
            .env("HERALD_ADDR", &self.config_addr)
            .env("HERALD_INGEST_URL", &self.ingest_addr)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if line.starts_with("export ") {
            self.exports.push(line.to_owned());
        }
        output
    }
}

/// Replaces `--flag …` in `line` with the value given for the flag.
fn fill_flags(line: &str, values: &BTreeMap<&str, String>) -> String {
    let mut filled = line.to_owned();
    for (flag, value) in values {
        filled = filled.replace(
            &format!("{flag} …"),
            &format!("{flag} {}", shell_word(value)),
        );
    }
    filled
}

#[test]
fn hardening_24_the_readme_quick_start_runs_as_written() {
    let commands = quickstart();
    assert!(commands.len() >= 8, "{commands:?}");

    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join(".herald");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let database_url = format!("sqlite:{}", state_dir.join("herald.db").display());
    let mut herald = HeraldProcess::start(
        &["all"],
        &[
            ("NATS_URL", &nats.url()),
            ("DATABASE_URL", &database_url),
            ("HERALD_STATE_DIR", state_dir.to_str().unwrap()),
            ("HERALD_ALLOW_CIDRS", "127.0.0.0/8"),
        ],
    );
    herald.wait_until_ready(Duration::from_secs(60));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Duration::ZERO));

    // The default cargo layout, whatever directory and profile built this
    // test: `target/debug/heraldctl` in the repository.
    let built = herald_testkit::heraldctl_binary();
    std::fs::create_dir_all(dir.path().join("target")).unwrap();
    std::os::unix::fs::symlink(built.parent().unwrap(), dir.path().join("target/debug")).unwrap();
    let mut shell = Shell {
        dir: dir.path().to_path_buf(),
        home,
        config_addr: format!("http://{}", herald.config_addr),
        ingest_addr: format!("http://{}", herald.ingest_addr),
        exports: Vec::new(),
    };

    let mut learned: BTreeMap<&str, String> = BTreeMap::new();
    let mut delivered: Option<Received> = None;
    for written in &commands {
        let mut line = written.replace(EXAMPLE_URL, &receiver.url());
        for prefix in PLACEHOLDERS {
            let placeholder = format!("{prefix}…");
            if line.contains(&placeholder) {
                let value = learned.get(prefix).unwrap_or_else(|| {
                    panic!("{written:?} needs {placeholder}, which no command before printed")
                });
                line = line.replace(&placeholder, value);
            }
        }
        if line.contains('…') {
            // `verify` takes what the receiver got: the headers, and the
            // body saved as body.json.
            let received = delivered.get_or_insert_with(|| {
                let event_id = learned
                    .get("evt_")
                    .unwrap_or_else(|| panic!("{written:?} comes before any event was published"));
                wait_for_event(&receiver, event_id)
            });
            std::fs::write(dir.path().join("body.json"), &received.body).unwrap();
            let headers = BTreeMap::from([
                ("--id", received.header("webhook-id").to_owned()),
                (
                    "--timestamp",
                    received.header("webhook-timestamp").to_owned(),
                ),
                (
                    "--signature",
                    received.header("webhook-signature").to_owned(),
                ),
            ]);
            line = fill_flags(&line, &headers);
            assert!(
                !line.contains('…'),
                "an unfilled placeholder in {written:?}"
            );
        }

        let output = shell.run(&line);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        assert!(
            output.status.success(),
            "{written}\nran as: {line}\nexit: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            output.status
        );
        for prefix in PLACEHOLDERS {
            if let Some(value) = values_with_prefix(&stdout, prefix).pop() {
                learned.insert(prefix, value);
            }
        }
        // A reader takes a moment over each answer; Watch carries a new
        // device or an activated endpoint to ingest and fanout meanwhile.
        std::thread::sleep(Duration::from_secs(1));
    }

    // The last command checked the delivery with heraldctl; the receiver's
    // own check, written from the specification, agrees.
    let received = delivered.expect("the quick start ends by verifying the delivery it made");
    let secret = learned
        .get("whsec_")
        .expect("the quick start shows the secret");
    assert_eq!(
        signatures::standard_signers(&received, &[secret.as_str()]),
        [0]
    );
    let envelope: serde_json::Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(envelope["id"], learned["evt_"].as_str());
    assert_eq!(envelope["deviceId"], learned["dev_"].as_str());
    assert_eq!(envelope["data"], serde_json::json!({"text": "hi"}));
    assert!(
        shell.home.join(".config/heraldctl/config.json").is_file(),
        "login saved into the reader's HOME"
    );
}

/// The delivery of `event_id` once the receiver has it.
fn wait_for_event(receiver: &Receiver, event_id: &str) -> Received {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = receiver.received().into_iter().find(|received| {
            serde_json::from_slice::<serde_json::Value>(&received.body)
                .is_ok_and(|envelope| envelope["id"] == event_id)
        });
        if let Some(received) = found {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "{event_id} never reached the receiver; it got {:?}",
            receiver
                .received()
                .iter()
                .map(|received| String::from_utf8_lossy(&received.body).into_owned())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn quickstart_lines_lose_their_comments_but_not_quoted_hashes() {
    assert_eq!(
        without_comment(r#"heraldctl tenants create Acme   # note its id, org_…"#),
        "heraldctl tenants create Acme"
    );
    assert_eq!(
        without_comment(r##"heraldctl events publish --data '{"tag":"#1"}' # x"##),
        r##"heraldctl events publish --data '{"tag":"#1"}'"##
    );
    assert_eq!(
        values_with_prefix("ID ep_01ab  whsec_a+b/c= x_ep_no", "ep_"),
        ["ep_01ab"]
    );
}
