//! The dataset on Azure Blob Storage (`az://container/prefix`), against Azurite, Microsoft's
//! emulator (`tests/common/azurite.rs`): the same round trip as on S3, shards committing the
//! manifest at once through Azure's conditional writes, and the CLI configured as for Azure.

mod common;

use std::sync::Arc;

use ohlcv::generator::GeneratorConfig;
use ohlcv::ingest::IngestError;
use ohlcv::ingest::{self, LoadSpec, Progress, Shard, Target};
use ohlcv::store::parquet::ParquetStore;
use ohlcv::store::{DataDir, Manifest, Store, StoreError};

use common::azurite::Azurite;

fn load_into(dir: &DataDir, spec: &LoadSpec) -> ingest::LoadSummary {
    let target = Target::Parquet { dir: dir.clone() };
    ingest::run(&target, spec, &Progress::default(), &Arc::default()).unwrap()
}

#[test]
fn shards_loading_into_azure_read_as_the_same_load_on_disk() {
    let Some(azurite) = Azurite::start("shards_loading_into_azure_read_as_the_same_load_on_disk")
    else {
        return;
    };
    let config = GeneratorConfig {
        end: common::date(2024, 6, 28),
        ..common::small_config(60_000)
    };
    let dir = azurite.data_dir(&azurite.container("ohlcv-shards", "shared"));
    // Three shards at once: each commit of the manifest races the others' (If-None-Match to
    // create it, If-Match on the ETag to update it), and none may lose another's partitions.
    let summaries: Vec<_> = std::thread::scope(|scope| {
        let shards: Vec<_> = (0..3)
            .map(|index| {
                let spec = LoadSpec {
                    shard: Shard { index, count: 3 },
                    threads: 1,
                    ..common::options(config.clone())
                };
                let dir = dir.clone();
                scope.spawn(move || load_into(&dir, &spec))
            })
            .collect();
        shards.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(summaries.iter().map(|s| s.written).sum::<u64>(), 60_000);

    let (local, reference) = common::embedded(&config);
    let remote = ParquetStore::new(dir.clone());
    assert_eq!(
        remote.manifest().unwrap(),
        Manifest::read(local.path()).unwrap().unwrap()
    );
    assert_eq!(
        remote.bytes_on_disk().unwrap(),
        reference.bytes_on_disk().unwrap()
    );
    common::assert_same_data(
        &remote,
        &reference,
        &config,
        &[("1m", chrono_tz::UTC), ("1d", chrono_tz::America::New_York)],
        ("2024-02-26", "2024-06-29"),
    );
    common::assert_verifies(&remote, (100, 1), 60_000);
    let again = load_into(&dir, &common::options(config));
    assert_eq!(
        (again.written, again.skipped),
        (0, summaries.iter().map(|s| s.units).sum())
    );
}

#[test]
fn the_cli_loads_into_azurite_configured_as_for_the_emulator() {
    let Some(azurite) = Azurite::start("the_cli_loads_into_azurite_configured_as_for_the_emulator")
    else {
        return;
    };
    let url = azurite.container("ohlcv-cli", "data");
    let work = tempfile::tempdir().unwrap();
    let base = azurite
        .endpoint
        .trim_end_matches(&format!("/{}", common::azurite::ACCOUNT));
    // The emulator's own switch: account, key and endpoint are the emulator's defaults, the
    // endpoint moved to this emulator's port.
    let env = [
        ("AZURE_STORAGE_USE_EMULATOR", "true"),
        ("AZURITE_BLOB_STORAGE_URL", base),
    ];
    let run = |args: &str| {
        let out = common::process::ohlcv(work.path(), &env)
            .args(["--data-dir", &url])
            .args(args.split_whitespace())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{args}: {err}");
        assert!(!text.contains(common::azurite::KEY) && !err.contains(common::azurite::KEY));
        text
    };
    let loaded = run("load --trades 20000 --symbols AAPL,MSFT --start 2024-03-01 --end 2024-03-31");
    assert!(loaded.contains("written         20000 "), "{loaded}");
    assert!(run("verify --sample 50").contains("trades counted       20000"));
    assert!(
        !work.path().join("data").exists(),
        "nothing was written locally"
    );
}

#[test]
fn a_missing_container_is_one_line_naming_it() {
    let Some(azurite) = Azurite::start("a_missing_container_is_one_line_naming_it") else {
        return;
    };
    let dir = azurite.data_dir("az://no-such-container/prefix");
    let target = Target::Parquet { dir: dir.clone() };
    let spec = common::options(common::small_config(1_000));
    let err = ingest::run(&target, &spec, &Progress::default(), &Arc::default()).unwrap_err();
    assert!(
        matches!(err, IngestError::Store(StoreError::Missing(_))),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("az://no-such-container/prefix"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(!text.contains(common::azurite::KEY), "{text}");
}

/// Azurite checks the shared-key signature as Azure does: a wrong key is refused at once (no
/// endless retry), in one line naming the URL, with neither key in it.
#[test]
fn a_wrong_account_key_is_one_line_naming_the_url() {
    let Some(azurite) = Azurite::start("a_wrong_account_key_is_one_line_naming_the_url") else {
        return;
    };
    let url = azurite.container("ohlcv-keys", "data");
    // A well-formed key (base64 of 64 bytes), not the account's.
    let wrong =
        "d3JvbmctYnV0LXdlbGwtZm9ybWVkLWtleS13cm9uZy1idXQtd2VsbC1mb3JtZWQta2V5LXdyb25nLWJ1dC13ZWxs";
    let env = azurite.env().into_iter().map(|(k, v)| {
        let v = if k == "AZURE_STORAGE_ACCOUNT_KEY" {
            wrong.to_string()
        } else {
            v
        };
        (k, v)
    });
    let dir = DataDir::Remote(ohlcv::store::remote::Remote::open_with(&url, env).unwrap());
    let target = Target::Parquet { dir };
    let spec = common::options(common::small_config(1_000));
    let err = ingest::run(&target, &spec, &Progress::default(), &Arc::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&url), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        !text.contains(common::azurite::KEY) && !text.contains(wrong),
        "{text}"
    );
}
