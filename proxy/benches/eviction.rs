//! Which eviction policy should the cache use? A simulation of two workloads against pingora's sharded LRU (what
//! `dime-edge` uses) and TinyUFO (TinyLFU admission + S3-FIFO), with the same byte budget. Prints hit ratios.
//!
//!     cargo bench -p dime-edge --bench eviction
//!
//! - web: 50,000 objects, sizes 1 KiB-1 MiB (log-uniform), Zipf(0.9) popularity, 1,000,000 requests.
//! - live+web: a live stream adds a 256 KiB segment every tick; 100 viewers fetch the newest segments and the
//!   playlist each tick, while web traffic (as above) shares the cache. What matters for live is segment misses:
//!   each one is an origin fetch that every viewer of that segment waits on.
//!
//! Deterministic (fixed seeds), bounded (fixed request counts).

use pingora_lru::Lru;
use tinyufo::TinyUfo;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        for c in cdf.iter_mut() {
            *c /= total;
        }
        Zipf { cdf }
    }
    fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// Object sizes in KiB, log-uniform between 1 KiB and 1 MiB.
fn sizes(n: usize, rng: &mut Rng) -> Vec<usize> {
    (0..n).map(|_| (2f64.powf(rng.unit() * 10.0)).round() as usize).collect()
}

trait Policy {
    /// Returns true on a hit; on a miss, offers the object for admission.
    fn request(&mut self, key: u64, kib: usize) -> bool;
    fn name(&self) -> &'static str;
}

struct LruPolicy(Lru<(), 16>);

impl Policy for LruPolicy {
    fn request(&mut self, key: u64, kib: usize) -> bool {
        if self.0.peek(key) {
            self.0.promote(key);
            return true;
        }
        self.0.admit(key, (), kib);
        self.0.evict_to_limit();
        false
    }
    fn name(&self) -> &'static str {
        "pingora LRU"
    }
}

struct UfoPolicy(TinyUfo<u64, ()>);

impl Policy for UfoPolicy {
    fn request(&mut self, key: u64, kib: usize) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.put(key, (), kib.min(u16::MAX as usize) as u16);
        false
    }
    fn name(&self) -> &'static str {
        "TinyUFO"
    }
}

fn policies(budget_kib: usize) -> Vec<Box<dyn Policy>> {
    vec![Box::new(LruPolicy(Lru::with_capacity(budget_kib, 4096))), Box::new(UfoPolicy(TinyUfo::new(budget_kib, 4096)))]
}

fn web(p: &mut dyn Policy) -> (f64, f64) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let n = 50_000;
    let kib = sizes(n, &mut rng);
    let zipf = Zipf::new(n, 0.9);
    let (mut hits, mut bytes_hit, mut bytes) = (0usize, 0usize, 0usize);
    let requests = 1_000_000;
    for _ in 0..requests {
        let k = zipf.sample(&mut rng);
        bytes += kib[k];
        if p.request(k as u64, kib[k]) {
            hits += 1;
            bytes_hit += kib[k];
        }
    }
    (hits as f64 / requests as f64, bytes_hit as f64 / bytes as f64)
}

/// Returns (segment miss ratio over all segment requests, origin fetches per segment, web hit ratio).
fn live_and_web(p: &mut dyn Policy) -> (f64, f64, f64) {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let n = 50_000;
    let kib = sizes(n, &mut rng);
    let zipf = Zipf::new(n, 0.9);
    let (mut seg_req, mut seg_miss, mut web_req, mut web_hit) = (0usize, 0usize, 0usize, 0usize);
    let ticks = 2_000;
    let playlist = u64::MAX;
    for tick in 0..ticks {
        // Segment keys live above the web key space.
        let newest = 1_000_000 + tick as u64;
        for _ in 0..100 {
            p.request(playlist, 1);
            for seg in newest.saturating_sub(2)..=newest {
                seg_req += 1;
                if !p.request(seg, 256) {
                    seg_miss += 1;
                }
            }
        }
        for _ in 0..500 {
            let k = zipf.sample(&mut rng);
            web_req += 1;
            if p.request(k as u64, kib[k]) {
                web_hit += 1;
            }
        }
    }
    (seg_miss as f64 / seg_req as f64, seg_miss as f64 / ticks as f64, web_hit as f64 / web_req as f64)
}

fn main() {
    // Budgets: 5% of the web working set (50,000 objects average ~150 KiB, so ~7 GiB; budget ~350 MiB).
    let total_kib: usize = sizes(50_000, &mut Rng(0x9E37_79B9_7F4A_7C15)).iter().sum();
    let budget = total_kib / 20;
    println!(
        "web: 50,000 objects, {} MiB in all, budget {} MiB, 1,000,000 Zipf(0.9) requests",
        total_kib / 1024,
        budget / 1024
    );
    println!("{:<14} {:>12} {:>14}", "policy", "hit ratio", "byte hit ratio");
    for mut p in policies(budget) {
        let (h, b) = web(p.as_mut());
        println!("{:<14} {:>12.4} {:>14.4}", p.name(), h, b);
    }
    println!();
    println!(
        "live+web: 2,000 segments of 256 KiB, 100 viewers x 3 newest segments per tick, 500 web requests per tick"
    );
    println!("{:<14} {:>18} {:>22} {:>14}", "policy", "segment miss ratio", "origin fetches/segment", "web hit ratio");
    for mut p in policies(budget) {
        let (m, f, w) = live_and_web(p.as_mut());
        println!("{:<14} {:>18.5} {:>22.3} {:>14.4}", p.name(), m, f, w);
    }
}
