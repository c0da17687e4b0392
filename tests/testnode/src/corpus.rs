//! A deterministic, real-looking corpus (products with text, numeric, facet and geo fields)
//! shared by the end-to-end tests and the benchmarks.

use serde_json::{json, Value};

pub const WORDS: &[&str] = &[
    "amber", "breeze", "canyon", "delta", "ember", "falcon", "glacier", "harbor", "island", "jungle",
    "kettle", "lantern", "meadow", "nebula", "orchard", "prairie", "quartz", "river", "summit", "thunder",
    "umbrella", "valley", "willow", "xenon", "yonder", "zephyr", "copper", "silver", "golden", "crimson",
    "midnight", "morning", "ocean", "forest", "desert", "mountain", "city", "garden", "winter", "summer",
];
pub const CATEGORIES: &[&str] = &["Books", "Electronics", "Garden", "Kitchen", "Outdoors", "Toys", "Music", "Sports"];
pub const BRANDS: &[&str] = &["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Soylent", "Vandelay", "Wonka"];
pub const COLORS: &[&str] = &["red", "green", "blue", "black", "white", "yellow"];

/// SplitMix64: tiny, deterministic, good enough for test data.
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

pub fn document(i: u64) -> Value {
    let mut r = Rng::new(i.wrapping_mul(7919).wrapping_add(17));
    let title_len = 2 + r.below(3);
    let title: Vec<&str> = (0..title_len).map(|_| r.pick(WORDS)).collect();
    let desc_len = 6 + r.below(10);
    let desc: Vec<&str> = (0..desc_len).map(|_| r.pick(WORDS)).collect();
    let tags: Vec<&str> = (0..1 + r.below(3)).map(|_| r.pick(COLORS)).collect();
    json!({
        "id": i,
        "title": title.join(" "),
        "description": desc.join(" "),
        "category": r.pick(CATEGORIES),
        "brand": r.pick(BRANDS),
        "tags": tags,
        "price": (r.below(50_000) as f64) / 100.0,
        "year": 1990 + r.below(35),
        "rating": r.below(11),
        "in_stock": r.below(3) != 0,
        "_geo": {"lat": 40.0 + (r.below(2000) as f64) / 100.0, "lng": -10.0 + (r.below(3000) as f64) / 100.0},
    })
}

pub fn documents(n: u64) -> Vec<Value> {
    (0..n).map(document).collect()
}

/// Settings the fidelity suite uses.
pub fn settings() -> Value {
    json!({
        "searchableAttributes": ["title", "description", "brand"],
        "filterableAttributes": ["category", "brand", "tags", "price", "year", "rating", "in_stock", "_geo"],
        "sortableAttributes": ["price", "year", "rating", "title", "_geo"],
        "faceting": {"maxValuesPerFacet": 100},
        "pagination": {"maxTotalHits": 5000},
    })
}
