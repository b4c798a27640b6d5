//! A private PostgreSQL cluster: initdb in a temporary directory (as the
//! `postgres` user when run as root: the server refuses root), started on
//! a free port of 127.0.0.1. A test may stop and start it again (the
//! database restarted under load) and start it with settings of its own
//! (TLS). A watcher stops it and removes its directory when the test
//! process ends, however it ends; dropping it does so at once.
//! [`crate::Postgres`] keeps one for every test of a process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a cluster starts with besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct PgSetup {
    /// More server settings, `name=value` (each passed as `-c`), e.g.
    /// `ssl=on`. File names in them are relative to the data directory.
    pub settings: Vec<String>,
    /// Files written into the data directory before the server first
    /// starts (a certificate and its key), readable by the server only.
    pub files: Vec<(String, Vec<u8>)>,
    /// `pg_hba.conf` in place of initdb's (which trusts every local and
    /// loopback connection).
    pub hba: Option<String>,
}

pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    root: bool,
    settings: Vec<String>,
    /// The shell that stops the server once this process is gone.
    watcher: Mutex<Option<Child>>,
}

impl PgCluster {
    /// initdb in a temporary directory, then start on a free port.
    pub fn start() -> PgCluster {
        PgCluster::start_with(PgSetup::default())
    }

    /// As [`PgCluster::start`], with `setup`'s settings and files.
    pub fn start_with(setup: PgSetup) -> PgCluster {
        let bin = crate::postgres_bin_dir().expect(
            "PostgreSQL's server binaries (Debian: postgresql) are needed, or POSTERN_TEST_POSTGRES",
        );
        let dir = tempfile::Builder::new()
            .prefix("postern-pgc")
            .tempdir()
            .expect("temp dir")
            .keep();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let cluster = PgCluster {
            port: crate::free_port(),
            dir,
            bin,
            root,
            settings: setup.settings,
            watcher: Mutex::new(None),
        };
        cluster.give_to_server();
        let out = cluster
            .tool("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(cluster.data())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut files = setup.files;
        if let Some(hba) = setup.hba {
            files.push(("pg_hba.conf".into(), hba.into_bytes()));
        }
        for (name, contents) in files {
            let path = cluster.data().join(name);
            std::fs::write(&path, contents).expect("write a cluster file");
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod a cluster file");
        }
        cluster.give_to_server();
        cluster.watch();
        cluster.up();
        cluster
    }

    /// `host=127.0.0.1 port=… user=postgres` (no dbname).
    pub fn base(&self) -> String {
        format!("host=127.0.0.1 port={} user=postgres", self.port)
    }

    /// The connection string of its `postgres` database.
    pub fn url(&self) -> String {
        format!("{} dbname=postgres", self.base())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// Starts the server (again), waiting until it accepts connections.
    pub fn up(&self) {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on",
            self.port,
            self.dir.display()
        );
        for setting in &self.settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-o", &options, "-w", "-t", "30", "start"])
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (`fast`: sessions are cut, as a restart does).
    pub fn down(&self) {
        let out = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "30", "stop"])
            .output()
            .expect("run pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// As root, the directory and all in it belong to `postgres`.
    fn give_to_server(&self) {
        if self.root {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&self.dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster dir to postgres");
        }
    }

    /// A shell, as the server's owner, that stops the server and removes
    /// its directory when this process is gone (statics are never
    /// dropped; a test may panic or be killed).
    fn watch(&self) {
        let script = format!(
            "while [ -d /proc/{me} ]; do sleep 1; done; \"$0\" -D \"$1\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$2\"",
            me = std::process::id()
        );
        let watcher = self
            .as_owner(Path::new("/bin/sh"))
            .arg("-c")
            .arg(script)
            .arg(self.bin.join("pg_ctl"))
            .arg(self.data())
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the cluster's watcher");
        *self.watcher.lock().unwrap() = Some(watcher);
    }

    fn tool(&self, name: &str) -> Command {
        self.as_owner(&self.bin.join(name))
    }

    fn as_owner(&self, program: &Path) -> Command {
        if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        if let Some(mut watcher) = self.watcher.lock().unwrap().take() {
            let _ = watcher.kill();
            let _ = watcher.wait();
        }
        let _ = std::fs::remove_dir_all(Path::new(&self.dir));
    }
}
