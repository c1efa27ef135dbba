//! [`DistributedError`], what can go wrong between the ranks of a data-parallel job
//! (re-exported by [`distributed`](crate::distributed)).

/// What can go wrong between ranks.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// The communication engine refused a call or could not start.
    #[error("distributed ({backend}): {message}")]
    Backend {
        /// `"mpi"`, `"nccl"`, ...
        backend: &'static str,
        /// What failed.
        message: String,
    },

    /// A broadcast named a root outside the world.
    #[error("distributed: root rank {root} is outside the world of {world_size} rank(s)")]
    BadRoot {
        /// The root asked for.
        root: usize,
        /// The world size.
        world_size: usize,
    },

    /// Ranks do not hold the same parameters at the start of training.
    #[error("distributed: parameters differ across ranks: `{path}` differs from rank 0's on {ranks} rank(s); build the model from the same seed and configuration (and resume from the same checkpoint) on every rank")]
    ParamsDiffer {
        /// The first parameter path (in state-tree order) that differs.
        path: String,
        /// How many ranks differ from rank 0 there.
        ranks: usize,
    },

    /// Ranks do not even hold the same number of parameters.
    #[error("distributed: rank {rank} holds {local} parameter tensors, rank 0 holds {root}")]
    ParamCount {
        /// The rank that differs.
        rank: usize,
        /// Its number of parameter tensors.
        local: usize,
        /// Rank 0's.
        root: usize,
    },

    /// Another rank failed at a point where all ranks check in together (setup, resume,
    /// checkpoint); its own error is printed by that rank.
    #[error("distributed: {what} failed on rank(s) {ranks:?} (their errors are reported there); stopping this rank too")]
    PeerFailed {
        /// The step that failed (`"run setup"`, `"checkpoint save"`, ...).
        what: String,
        /// The ranks that failed.
        ranks: Vec<usize>,
    },

    /// A global batch cannot be split into equal shards.
    #[error("DataLoader: the global batch of {batch} examples does not split evenly over {world_size} ranks{detail}")]
    UnevenBatch {
        /// The batch (or last batch) size.
        batch: usize,
        /// The world size.
        world_size: usize,
        /// Which batch, and what to change.
        detail: String,
    },
}
