//! Process plumbing shared by the Dovecot and Postfix modules: spawning, readiness probes,
//! signals, the watchdog, and reading logs for failure messages.
//!
//! Signals go through `sh`'s `kill` builtin because the crate forbids `unsafe`, and so `libc`.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;

use super::HOST;

/// How long a server may take to come up before the bench gives up on it.
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(10);

const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// Set in each server's environment; the watchdog script looks for it by this name.
const BENCH_ROOT_VARIABLE: &str = "CASEMAIL_BENCH_ROOT";

/// Why a server did not start.
pub(super) enum StartError {
    /// Another process bound one of its ports first; new ports will do.
    PortTaken(anyhow::Error),
    /// Anything else, which trying again will not fix.
    Failed(anyhow::Error),
}

impl StartError {
    pub(super) fn into_inner(self) -> anyhow::Error {
        match self {
            StartError::PortTaken(err) | StartError::Failed(err) => err,
        }
    }
}

/// Replaces every `{{NAME}}` in `template`, failing if a placeholder is left over.
pub(super) fn render_template(template: &str, values: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut text = template.to_owned();
    for (name, value) in values {
        text = text.replace(&format!("{{{{{name}}}}}"), value);
    }
    if let Some(start) = text.find("{{") {
        let rest = text.get(start..).unwrap_or_default();
        let placeholder = rest.split("}}").next().unwrap_or(rest);
        anyhow::bail!("template placeholder {placeholder}}}}} has no value");
    }
    Ok(text)
}

/// Runs a short command to completion, failing with its output when it fails.
pub(super) fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed with {}: {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Spawns a long-running server with its output going to `output`, in a process group of its
/// own so that a Ctrl-C aimed at `cargo test` leaves the clean-up to the watchdog.
///
/// The server's environment names the bench, which lets the watchdog find it even before it
/// has changed into the bench directory.
pub(super) fn spawn_server(
    command: &mut Command,
    root: &Path,
    output: &Path,
) -> anyhow::Result<Child> {
    let log = File::options()
        .create(true)
        .append(true)
        .open(output)
        .with_context(|| format!("open {}", output.display()))?;
    let log_for_stderr = log
        .try_clone()
        .with_context(|| format!("reopen {}", output.display()))?;
    command
        .env(BENCH_ROOT_VARIABLE, root)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_for_stderr)
        .process_group(0)
        .spawn()
        .with_context(|| format!("spawn {command:?}"))
}

/// Sends `signal` (a name such as `TERM`) to `pid`; a process that is already gone is fine.
pub(super) fn signal(pid: u32, signal: &str) {
    // A failure means the process has already exited, which is what the callers want anyway.
    let _ = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\" 2>/dev/null", "sh", signal])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether the child has exited (and has been reaped by this call).
pub(super) fn has_exited(child: &mut Child) -> bool {
    // An error from try_wait means there is no such child any more.
    !matches!(child.try_wait(), Ok(None))
}

/// Waits for `child` to exit, for at most `timeout`, without blocking the runtime.
pub(super) async fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !has_exited(child) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    true
}

/// Waits for `child` to exit, for at most `timeout`, blocking the thread; for `Drop`.
pub(super) fn wait_exit_blocking(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !has_exited(child) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
    true
}

/// The pid in a server's pid file, if that process is still running from `cwd`.
///
/// Both masters change into a directory of the bench (Postfix its queue, Dovecot its base_dir),
/// so checking the working directory makes sure a stale pid file never leads to signalling an
/// unrelated process.
pub(super) fn running_master(pid_file: &Path, cwd: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    let actual = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    (actual == cwd).then_some(pid)
}

/// Polls until `ready` answers true, failing early if `child` exits.
pub(super) async fn wait_ready<F, Fut>(
    child: &mut Child,
    what: &str,
    mut ready: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("poll the server process")? {
            bail!("{what} exited during start-up with {status}");
        }
        if ready().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{what} was not ready after {START_TIMEOUT:?}");
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Whether a server on `port` accepts a connection and greets with a line starting `prefix`.
pub(super) async fn greets(port: u16, prefix: &str) -> bool {
    let Ok(stream) = TcpStream::connect((HOST, port)).await else {
        return false;
    };
    let mut line = String::new();
    let mut reader = BufReader::new(stream);
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read_line(&mut line)).await;
    matches!(read, Ok(Ok(length)) if length > 0) && line.starts_with(prefix)
}

/// A position in a log file, to read only what was written after it.
pub(super) struct LogMark {
    path: PathBuf,
    offset: u64,
}

impl LogMark {
    pub(super) fn at_end(path: &Path) -> LogMark {
        let offset = std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0);
        LogMark {
            path: path.to_owned(),
            offset,
        }
    }

    /// Everything written to the log since the mark.
    pub(super) fn since(&self) -> String {
        let mut bytes = Vec::new();
        // A log that cannot be read shows as empty; the error report still says what failed.
        if let Ok(mut file) = File::open(&self.path)
            && file.seek(SeekFrom::Start(self.offset)).is_ok()
            && file.read_to_end(&mut bytes).is_err()
        {
            bytes.clear();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Turns a failed start into a [`StartError`], from what the server logged since `marks`.
pub(super) fn classify_start_failure(error: anyhow::Error, marks: &[LogMark]) -> StartError {
    let mut report = format!("{error:#}");
    let mut port_taken = false;
    for mark in marks {
        let logged = mark.since();
        port_taken |= logged.contains("Address already in use");
        report.push_str(&format!(
            "\n--- {} ---\n{}",
            mark.path.display(),
            last_lines(&logged, 40)
        ));
    }
    let error = anyhow!("{report}");
    if port_taken {
        StartError::PortTaken(error)
    } else {
        StartError::Failed(error)
    }
}

/// The last `count` lines of the file at `path`, or a note that it cannot be read.
pub(super) fn tail(path: &Path, count: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), count),
        Err(err) => format!("(cannot read: {err})"),
    }
}

fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(count);
    lines.get(start..).unwrap_or_default().join("\n")
}

/// Stops the bench's servers and removes its directory once the test process is gone.
///
/// It is a shell that reads its stdin until end-of-file. The test process holds the only write
/// end of that pipe, so the pipe closes when the process exits, even when it is killed, or when
/// a private bench is dropped. The watchdog then stops both masters, then anything else still
/// running from the bench's directory or carrying its `CASEMAIL_BENCH_ROOT`, and deletes the
/// directory unless `CASEMAIL_BENCH_KEEP` is set.
pub(super) struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

const WATCHDOG_SCRIPT: &str = r#"
root=$1
case "$root" in
    */casemail-bench-*) ;;
    *) echo "casemail bench watchdog: refusing to manage $root" >&2; exit 1 ;;
esac
trap '' INT HUP
while read -r _; do :; done

# Stops the master whose pid is in $1 if it still runs from $2, the directory it changes into,
# and gives it five seconds to shut down its helpers.
stop_master() {
    pid=$(tr -cd 0-9 < "$1" 2>/dev/null)
    [ -n "$pid" ] || return 0
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$2" ] || return 0
    kill -s TERM "$pid" 2>/dev/null || return 0
    tries=0
    while [ "$tries" -lt 100 ]; do
        case "$(cut -d ' ' -f 3 "/proc/$pid/stat" 2>/dev/null)" in
            ''|Z) return 0 ;;
        esac
        sleep 0.05
        tries=$((tries + 1))
    done
    kill -s KILL "$pid" 2>/dev/null
}

# Every process of this bench: working inside its directory, naming it on its command line
# (Dovecot's master does, from the start), or carrying the harness's CASEMAIL_BENCH_ROOT. The
# patterns reach grep on stdin, so grep never lists itself; this script's own processes name
# the directory too and are left out by their first argument.
members() {
    {
        find /proc/[0-9]*/cwd -maxdepth 0 \( -lname "$root" -o -lname "$root/*" \) 2>/dev/null
        printf 'CASEMAIL_BENCH_ROOT=%s\n' "$root" |
            grep -lzxF -f - /proc/[0-9]*/environ 2>/dev/null
        printf '%s/\n' "$root" | grep -lF -f - /proc/[0-9]*/cmdline 2>/dev/null |
            while read -r file; do
                grep -qF casemail-bench-watchdog "$file" 2>/dev/null || echo "$file"
            done
    } | cut -d / -f 3 | sort -u
}

stop_master "$root/postfix/queue/pid/master.pid" "$root/postfix/queue"
stop_master "$root/dovecot/run/master.pid" "$root/dovecot/run"

# Whatever is left: a server caught half-way through starting, or a helper that outlived its
# master. TERM first, KILL after three seconds; done after two empty looks in a row.
round=0
empty=0
while [ "$round" -lt 50 ] && [ "$empty" -lt 2 ]; do
    pids=$(members)
    if [ -z "$pids" ]; then
        empty=$((empty + 1))
    else
        empty=0
        signal=TERM
        [ "$round" -lt 30 ] || signal=KILL
        kill -s "$signal" $pids 2>/dev/null
    fi
    sleep 0.1
    round=$((round + 1))
done

if [ -z "$CASEMAIL_BENCH_KEEP" ]; then
    rm -rf -- "$root"
fi
"#;

impl Watchdog {
    pub(super) fn spawn(root: &Path) -> anyhow::Result<Watchdog> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("casemail-bench-watchdog")
            .arg(root)
            .stdin(Stdio::piped())
            // Not the test's stdout: a pipe reader such as `cargo test | tee` would otherwise
            // wait for the watchdog too.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("spawn the bench watchdog")?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }

    /// Lets the watchdog clean up now, without waiting for it.
    pub(super) fn release(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits until the watchdog has stopped the servers and removed the directory.
    pub(super) fn wait(mut self) {
        self.release();
        // The script bounds its own run time; an error means it has already been reaped.
        let _ = self.child.wait();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Closing the pipe is the signal to clean up; a bench that failed half-way through
        // start-up ends here without waiting.
        drop(self.stdin.take());
    }
}
