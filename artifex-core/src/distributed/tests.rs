//! Unit tests with an in-process group of ranks (one thread each), so the collective logic
//! is checked without MPI.

use std::sync::{Arc, Barrier, Mutex};

use candle_core::{Device, Tensor};

use super::*;
use crate::layers::BatchNorm;
use crate::Rngs;

/// Ranks as threads: each collective deposits its buffer, waits, and sums in rank order.
struct Hub {
    barrier: Barrier,
    slots: Mutex<Vec<Vec<f64>>>,
    bytes: Mutex<Vec<u8>>,
}

#[derive(Clone)]
struct Local {
    rank: usize,
    size: usize,
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Local({}/{})", self.rank, self.size)
    }
}

fn group(size: usize) -> Vec<Local> {
    let hub = Arc::new(Hub {
        barrier: Barrier::new(size),
        slots: Mutex::new(vec![Vec::new(); size]),
        bytes: Mutex::new(Vec::new()),
    });
    (0..size)
        .map(|rank| Local {
            rank,
            size,
            hub: Arc::clone(&hub),
        })
        .collect()
}

impl Local {
    fn gather(&self, buf: &[f64]) -> Vec<Vec<f64>> {
        self.hub.slots.lock().unwrap()[self.rank] = buf.to_vec();
        self.hub.barrier.wait();
        let all = self.hub.slots.lock().unwrap().clone();
        self.hub.barrier.wait();
        all
    }
}

impl Communicator for Local {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn backend(&self) -> &'static str {
        "threads"
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        let all = self.gather(&buf.iter().map(|&v| f64::from(v)).collect::<Vec<_>>());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = all.iter().fold(0f32, |acc, r| acc + r[i] as f32);
        }
        Ok(())
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let all = self.gather(buf);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = all.iter().map(|r| r[i]).sum();
        }
        Ok(())
    }
    fn broadcast_bytes(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        if self.rank == root {
            *self.hub.bytes.lock().unwrap() = buf.clone();
        }
        self.hub.barrier.wait();
        *buf = self.hub.bytes.lock().unwrap().clone();
        self.hub.barrier.wait();
        Ok(())
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<()> {
        let mut bytes: Vec<u8> = buf.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.broadcast_bytes(&mut bytes, root)?;
        for (b, c) in buf.iter_mut().zip(bytes.chunks_exact(4)) {
            *b = f32::from_le_bytes(c.try_into().unwrap());
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.hub.barrier.wait();
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// Runs `f(rank_comm)` on every rank of a group of `size` threads.
fn on_ranks<R: Send + 'static>(
    size: usize,
    f: impl Fn(Arc<dyn Communicator>) -> R + Send + Sync + 'static,
) -> Vec<R> {
    let f = Arc::new(f);
    let handles: Vec<_> = group(size)
        .into_iter()
        .map(|c| {
            let f = Arc::clone(&f);
            std::thread::spawn(move || f(Arc::new(c)))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn data() -> (Tensor, Tensor) {
    let key = crate::RngKey::from_seed(7);
    let x = key
        .normal(&[8, 3], candle_core::DType::F32, &Device::Cpu)
        .unwrap();
    let w = crate::RngKey::from_seed(8)
        .normal(&[8, 3], candle_core::DType::F32, &Device::Cpu)
        .unwrap();
    ((x * 3.0).unwrap() + 1.0).map(|x| (x, w)).unwrap()
}

/// The loss `sum(bn(x) * w)` and its gradients with respect to `x` and the scale.
fn bn_grads(bn: &BatchNorm, x: &Tensor, w: &Tensor) -> (Tensor, Tensor, Tensor) {
    let xv = candle_core::Var::from_tensor(x).unwrap();
    let y = bn.forward(xv.as_tensor()).unwrap();
    let grads = (&y * w).unwrap().sum_all().unwrap().backward().unwrap();
    let gx = grads.get(xv.as_tensor()).unwrap().clone();
    let scale = bn.scale.as_ref().unwrap().var().as_tensor();
    (y, gx, grads.get(scale).unwrap().clone())
}

fn max_abs(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn synchronized_batch_norm_equals_one_process_forward_and_backward() {
    let (x, w) = data();
    let bn = BatchNorm::new(3, &mut Rngs::new(0)).unwrap();
    let (y, gx, gscale) = bn_grads(&bn, &x, &w);
    let (x2, w2) = (x.clone(), w.clone());
    let per_rank = on_ranks(2, move |comm| {
        let bn = BatchNorm::builder(3)
            .sync_stats(true)
            .build(&mut Rngs::new(0))
            .unwrap();
        let r = comm.rank();
        let (xs, ws) = (
            x2.narrow(0, 4 * r, 4).unwrap(),
            w2.narrow(0, 4 * r, 4).unwrap(),
        );
        let (y, gx, gs) = scope(&comm, false, || bn_grads(&bn, &xs, &ws));
        (y, gx, gs, bn.mean.value(), bn.var.value())
    });
    let cat = |i: usize| {
        let parts: Vec<Tensor> = per_rank.iter().map(|p| [&p.0, &p.1][i].clone()).collect();
        Tensor::cat(&parts, 0).unwrap()
    };
    assert!(max_abs(&cat(0), &y) < 1e-5, "outputs");
    assert!(max_abs(&cat(1), &gx) < 1e-5, "input gradients");
    // The loss is a sum over ranks: the ranks' scale gradients add up to the whole one.
    let gs = (&per_rank[0].2 + &per_rank[1].2).unwrap();
    assert!(max_abs(&gs, &gscale) < 1e-5, "scale gradient");
    // Running statistics: the global batch's, the same on both ranks.
    assert!(max_abs(&per_rank[0].3, &bn.mean.value()) < 1e-6);
    assert!(max_abs(&per_rank[1].4, &bn.var.value()) < 1e-6);
}

/// Synchronized mode takes one code path at every world size (statistics and normalization
/// in `f64`): a trainer step on one rank (`Single`) is the exact reference of two ranks, so
/// their outputs, input gradients and running statistics agree bitwise; the ranks' scale
/// gradients, summed in `f32` like the trainer's gradient all-reduce, agree to rounding.
#[test]
fn synchronized_batch_norm_on_one_rank_is_the_exact_reference_of_two() {
    let (x, w) = data();
    let sync = || {
        BatchNorm::builder(3)
            .sync_stats(true)
            .build(&mut Rngs::new(0))
            .unwrap()
    };
    let bn = sync();
    let single: Arc<dyn Communicator> = Arc::new(Single);
    let (y, gx, gscale) = scope(&single, false, || bn_grads(&bn, &x, &w));
    let (x2, w2) = (x.clone(), w.clone());
    let per_rank = on_ranks(2, move |comm| {
        let bn = sync();
        let r = comm.rank();
        let (xs, ws) = (
            x2.narrow(0, 4 * r, 4).unwrap(),
            w2.narrow(0, 4 * r, 4).unwrap(),
        );
        let (y, gx, gs) = scope(&comm, false, || bn_grads(&bn, &xs, &ws));
        (y, gx, gs, bn.mean.value(), bn.var.value())
    });
    let cat = |i: usize| {
        let parts: Vec<Tensor> = per_rank.iter().map(|p| [&p.0, &p.1][i].clone()).collect();
        Tensor::cat(&parts, 0).unwrap()
    };
    assert_eq!(max_abs(&cat(0), &y), 0.0, "outputs");
    assert_eq!(max_abs(&cat(1), &gx), 0.0, "input gradients");
    for rank in &per_rank {
        assert_eq!(max_abs(&rank.3, &bn.mean.value()), 0.0, "running mean");
        assert_eq!(max_abs(&rank.4, &bn.var.value()), 0.0, "running variance");
    }
    let gs = (&per_rank[0].2 + &per_rank[1].2).unwrap();
    assert!(max_abs(&gs, &gscale) < 1e-6, "scale gradient");
}

#[test]
fn per_replica_batch_norm_uses_each_shard() {
    let (x, _) = data();
    let x2 = x.clone();
    let means = on_ranks(2, move |comm| {
        let bn = BatchNorm::new(3, &mut Rngs::new(0)).unwrap();
        let xs = x2.narrow(0, 4 * comm.rank(), 4).unwrap();
        scope(&comm, false, || bn.forward(&xs).unwrap());
        bn.mean.value()
    });
    assert!(
        max_abs(&means[0], &means[1]) > 1e-3,
        "shards have their own statistics"
    );
}

#[test]
fn parameter_check_names_the_first_differing_path() {
    let results = on_ranks(2, |comm| {
        let seed = comm.rank() as u64; // rank 1 builds from another seed
        let bn = BatchNorm::builder(3)
            .scale_init(crate::init::normal(1.0))
            .build(&mut Rngs::new(seed))
            .unwrap();
        let same = BatchNorm::new(3, &mut Rngs::new(seed)).unwrap();
        (
            check_same_params(&*comm, &bn).map_err(|e| e.to_string()),
            check_same_params(&*comm, &same).is_ok(),
        )
    });
    for (differs, same) in results {
        let message = differs.unwrap_err();
        assert!(
            message.contains("`scale` differs from rank 0's on 1 rank"),
            "{message}"
        );
        assert!(same);
    }
}

#[test]
fn agree_reports_the_failed_rank_to_the_others() {
    let results = on_ranks(3, |comm| {
        let local = match comm.rank() {
            2 => Err(crate::Error::config("test", "disk full")),
            _ => Ok(()),
        };
        agree(&*comm, "checkpoint save", local).map_err(|e| e.to_string())
    });
    assert!(results[2].as_ref().unwrap_err().contains("disk full"));
    for r in &results[..2] {
        let message = r.as_ref().unwrap_err();
        assert!(
            message.contains("checkpoint save failed on rank(s) [2]"),
            "{message}"
        );
    }
}

#[test]
fn single_is_the_identity_and_refuses_other_roots() {
    let mut v = vec![1.5f32, -2.0];
    Single.all_reduce_sum_f32(&mut v).unwrap();
    assert_eq!(v, [1.5, -2.0]);
    assert!(Single.broadcast_f32(&mut v, 1).is_err());
    assert!(current().is_none());
    let comm: Arc<dyn Communicator> = Arc::new(Single);
    assert_eq!(
        scope(&comm, true, || (current().is_some(), batch_stats_synced())),
        (true, true)
    );
    assert!(current().is_none() && !batch_stats_synced());
}
