//! Starts Azurite, Microsoft's Azure Storage emulator (`azurite-blob`, from npm's `azurite`,
//! which `scripts/test.sh` installs), on a free loopback port with its data in a temporary
//! directory, and stops it on drop. When it cannot be started the tests using it say so and
//! pass without running.

use std::process::{Child, Command, Stdio};

use super::{DEADLINE, free_port, poll_until};

/// Azurite's one account and its key, published by Microsoft for the emulator.
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    /// The account's blob endpoint, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub endpoint: String,
    _data: tempfile::TempDir,
}

/// Creates a container: Azure's Create Container request, signed with the account's shared
/// key (object_store has no such call, and Python's standard library has HMAC).
const CREATE_CONTAINER: &str = r#"
import base64, email.utils, hashlib, hmac, sys, urllib.request
endpoint, account, key, container = sys.argv[1:]
date = email.utils.formatdate(usegmt=True)
headers = {"x-ms-date": date, "x-ms-version": "2021-08-06"}
canonical = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
path = urllib.parse.urlparse(endpoint).path + "/" + container
to_sign = "PUT" + "\n" * 12 + canonical + f"/{account}{path}\nrestype:container"
mac = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
headers["Authorization"] = f"SharedKey {account}:{base64.b64encode(mac).decode()}"
request = urllib.request.Request(f"{endpoint}/{container}?restype=container", method="PUT",
                                 headers=headers)
print(urllib.request.urlopen(request).status)
"#;

impl Azurite {
    /// A started emulator, or `None` (and a line saying why) when it is not installed.
    pub fn start(test: &str) -> Option<Self> {
        let port = free_port();
        let data = tempfile::tempdir().unwrap();
        let child = Command::new("azurite-blob")
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            // object_store may speak a newer API version than the emulator knows.
            .args(["--skipApiVersionCheck", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            println!(
                "{test}: skipped, azurite-blob is not installed (scripts/test.sh installs it)"
            );
            return None;
        };
        let mut azurite = Azurite {
            child,
            endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
            _data: data,
        };
        let client = reqwest::blocking::Client::new();
        let (ready, exited) = poll_until(
            "Azurite to answer",
            DEADLINE,
            || {
                (
                    client.get(&azurite.endpoint).send().is_ok(),
                    azurite.child.try_wait().unwrap(),
                )
            },
            |(ready, exited)| *ready || exited.is_some(),
        );
        if !ready {
            println!("{test}: skipped, Azurite exited ({exited:?})");
            return None;
        }
        Some(azurite)
    }

    /// Creates `container` and returns its URL with `prefix`.
    pub fn container(&self, container: &str, prefix: &str) -> String {
        let out = Command::new("python3")
            .args([
                "-c",
                CREATE_CONTAINER,
                &self.endpoint,
                ACCOUNT,
                KEY,
                container,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("az://{container}/{prefix}")
    }

    /// The variables a client of this emulator is configured with, as for Azure itself.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AZURE_STORAGE_ACCOUNT_NAME", ACCOUNT),
            ("AZURE_STORAGE_ACCOUNT_KEY", KEY),
            ("AZURE_STORAGE_ENDPOINT", &self.endpoint),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The data directory `url` on this emulator.
    pub fn data_dir(&self, url: &str) -> ohlcv::store::DataDir {
        ohlcv::store::DataDir::Remote(
            ohlcv::store::remote::Remote::open_with(url, self.env()).unwrap(),
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
