//! The shipped config files parse and validate.
use miroir::config::Config;

#[test]
fn shipped_configs_are_valid() {
    for f in ["config/dev.yaml", "config/example.yaml"] {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let c = Config::load(&p).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(c.shards > 0);
    }
    let dev = Config::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev.yaml")).unwrap();
    assert_eq!((dev.nodes.len(), dev.shards, dev.replication_factor, dev.replica_groups), (3, 16, 1, 1));
}
