//! Placement figures (docs/hashing.md, "Measured"): how evenly the shard → node rule spreads
//! documents, and how much data adding or draining a node moves. Pure computation, no network.
//!
//! `cargo bench --bench placement` prints markdown tables:
//! 1. the default shard count, RF = 1, nodes `node-1`.., 63,681 documents with ids
//!    "0".."63680": per node count N = 3..8, the largest node / the mean (documents), the
//!    data moved by adding node N+1 (fraction of all documents and multiple of the optimum
//!    1/(N+1)) and by draining `node-1` (multiple of what it held, the optimum);
//! 2. the worst of those figures over two namings (`node-1`.., `meili-0`..), two id sets
//!    (sequential, UUID-like) and RF 1 and 2;
//! 3. the trade-off: the worst case over N = 3..8 for several shard counts, with this rule and
//!    with plain rendezvous (the rule before), over 24 namings.

use std::collections::BTreeMap;

use miroir::dataplane::hash::{rendezvous, shard_of};
use miroir::dataplane::placement::{assign_group, DEFAULT_SHARDS};
use xxhash_rust::xxh3::xxh3_64_with_seed;

const DOCS: u32 = 63_681;

#[derive(Clone, Copy, PartialEq)]
enum Rule {
    /// `placement::assign_group` (bounded-load rank rendezvous).
    Bounded,
    /// Plain rendezvous: the RF highest `hrw_weight`s (the rule before).
    Plain,
}

fn table(rule: Rule, shards: u32, rf: usize, members: &[String]) -> Vec<Vec<String>> {
    let m: Vec<&str> = members.iter().map(String::as_str).collect();
    match rule {
        Rule::Bounded => assign_group(shards, rf, &m),
        Rule::Plain => (0..shards).map(|s| rendezvous(s, &m, rf).into_iter().map(str::to_string).collect()).collect(),
    }
}

/// Documents per shard for one id set.
fn shard_docs(ids: &[String], shards: u32) -> Vec<u64> {
    let mut out = vec![0u64; shards as usize];
    for id in ids {
        out[shard_of(id, shards) as usize] += 1;
    }
    out
}

fn sequential_ids() -> Vec<String> {
    (0..DOCS).map(|i| i.to_string()).collect()
}

/// UUID-like ids, reproducible: two 64-bit hashes of the counter, formatted 8-4-4-4-12.
fn uuid_ids() -> Vec<String> {
    (0..DOCS as u64)
        .map(|i| {
            let a = xxh3_64_with_seed(&i.to_le_bytes(), 1);
            let b = xxh3_64_with_seed(&i.to_le_bytes(), 2);
            format!("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff, (b >> 48) & 0x3fff | 0x8000, b & 0xffff_ffff_ffff)
        })
        .collect()
}

/// Largest node / mean, by documents (each shard counted once per holder).
fn balance(t: &[Vec<String>], docs: &[u64], nodes: usize) -> f64 {
    let mut load: BTreeMap<&str, u64> = BTreeMap::new();
    for (s, h) in t.iter().enumerate() {
        for n in h {
            *load.entry(n.as_str()).or_default() += docs[s];
        }
    }
    let total: u64 = load.values().sum();
    *load.values().max().unwrap() as f64 / (total as f64 / nodes as f64)
}

/// Shard replicas per node: (min, max).
fn replica_range(t: &[Vec<String>], members: &[String]) -> (usize, usize) {
    let mut load: BTreeMap<&str, usize> = members.iter().map(|m| (m.as_str(), 0)).collect();
    for h in t {
        for n in h {
            *load.get_mut(n.as_str()).unwrap() += 1;
        }
    }
    (*load.values().min().unwrap(), *load.values().max().unwrap())
}

/// Documents copied to a node that did not hold them (one per new holder).
fn moved(a: &[Vec<String>], b: &[Vec<String>], docs: &[u64]) -> u64 {
    a.iter().zip(b).enumerate().map(|(s, (ha, hb))| hb.iter().filter(|n| !ha.contains(n)).count() as u64 * docs[s]).sum()
}

fn held(t: &[Vec<String>], node: &str, docs: &[u64]) -> u64 {
    t.iter().enumerate().filter(|(_, h)| h.iter().any(|n| n == node)).map(|(s, _)| docs[s]).sum()
}

type Naming = fn(usize) -> String;

fn node_naming(i: usize) -> String {
    format!("node-{}", i + 1)
}
fn meili_naming(i: usize) -> String {
    format!("meili-{i}")
}

/// One row: N nodes.
struct Row {
    n: usize,
    replicas: (usize, usize),
    balance: f64,
    add_fraction: f64,
    add_vs_optimal: f64,
    drain_vs_optimal: f64,
}

fn row(rule: Rule, shards: u32, rf: usize, name: &dyn Fn(usize) -> String, n: usize, docs: &[u64]) -> Row {
    let members = |k: usize| -> Vec<String> { (0..k).map(name).collect() };
    let cur = members(n);
    let t = table(rule, shards, rf, &cur);
    let total = docs.iter().sum::<u64>() as f64 * rf as f64;
    let grown = table(rule, shards, rf, &members(n + 1));
    let add = moved(&t, &grown, docs) as f64 / total;
    // Drain the first node: the others stay.
    let rest: Vec<String> = cur[1..].to_vec();
    let drain = if rest.len() >= rf {
        let d = table(rule, shards, rf, &rest);
        moved(&t, &d, docs) as f64 / held(&t, &cur[0], docs) as f64
    } else {
        f64::NAN
    };
    Row {
        n,
        replicas: replica_range(&t, &cur),
        balance: balance(&t, docs, n),
        add_fraction: add,
        add_vs_optimal: add * (n + 1) as f64,
        drain_vs_optimal: drain,
    }
}

fn main() {
    let started = std::time::Instant::now();
    let s = DEFAULT_SHARDS;
    let seq = sequential_ids();
    let uuid = uuid_ids();

    println!("## Default placement: {s} shards, RF = 1, nodes node-1.., {DOCS} documents with ids \"0\"..\"{}\"\n", DOCS - 1);
    println!("| N | shards per node (min–max) | largest / mean (documents) | adding node N+1 moves | × optimal 1/(N+1) | draining node-1 (N → N−1) moves × what it held |");
    println!("|---|---|---|---|---|---|");
    let docs = shard_docs(&seq, s);
    for n in 3..=8 {
        let r = row(Rule::Bounded, s, 1, &node_naming, n, &docs);
        println!(
            "| {} | {}–{} | {:.3} | {:.1} % | {:.3} | {:.3} |",
            r.n,
            r.replicas.0,
            r.replicas.1,
            r.balance,
            100.0 * r.add_fraction,
            r.add_vs_optimal,
            r.drain_vs_optimal
        );
    }

    println!("\n## Worst case over namings node-1.. / meili-0.., sequential / UUID-like ids, RF 1 / 2 ({s} shards)\n");
    println!("| N | largest / mean (documents) | adding node N+1: × optimal | draining the first node (N → N−1): × what it held |");
    println!("|---|---|---|---|");
    let namings: [Naming; 2] = [node_naming, meili_naming];
    let id_sets = [shard_docs(&seq, s), shard_docs(&uuid, s)];
    for n in 3..=8 {
        let (mut b, mut a, mut d) = (0f64, 0f64, 0f64);
        for name in namings {
            for docs in &id_sets {
                for rf in [1, 2] {
                    let r = row(Rule::Bounded, s, rf, &name, n, docs);
                    b = b.max(r.balance);
                    a = a.max(r.add_vs_optimal);
                    d = d.max(r.drain_vs_optimal);
                }
            }
        }
        println!("| {n} | {b:.3} | {a:.3} | {d:.3} |");
    }

    println!("\n## Shard count trade-off: worst over N = 3..8 and 24 namings (RF = 1, sequential ids)\n");
    println!("| shards | rule | largest / mean (worst) | adding a node: × optimal (worst) | draining the first node: × what it held (worst) |");
    println!("|---|---|---|---|---|");
    // node-1.., meili-0.. and 22 more, prefixes derived from a hash (reproducible).
    let mut prefixes: Vec<String> = vec!["node-".into(), "meili-".into()];
    for k in 0..22u64 {
        let h = xxh3_64_with_seed(&k.to_le_bytes(), 7);
        let len = 3 + (h % 8) as usize;
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let p: String = (0..len).map(|j| alphabet[((h >> (5 * j)) % 36) as usize] as char).collect();
        prefixes.push(format!("{p}-"));
    }
    for shards in [16u32, 64, 256, 840, 1024, 1260, 1680] {
        let docs = shard_docs(&seq, shards);
        for rule in [Rule::Plain, Rule::Bounded] {
            let (mut b, mut a, mut d) = (0f64, 0f64, 0f64);
            for (k, prefix) in prefixes.iter().enumerate() {
                let first = if k == 0 { 1 } else { 0 };
                let name = |i: usize| format!("{prefix}{}", i + first);
                for n in 3..=8 {
                    let r = row(rule, shards, 1, &name, n, &docs);
                    b = b.max(r.balance);
                    a = a.max(r.add_vs_optimal);
                    d = d.max(r.drain_vs_optimal);
                }
            }
            let rule = if rule == Rule::Bounded { "bounded-load rank rendezvous" } else { "plain rendezvous" };
            println!("| {shards} | {rule} | {b:.3} | {a:.3} | {d:.3} |");
        }
    }
    eprintln!("\n(computed in {:.1} s)", started.elapsed().as_secs_f64());
}
