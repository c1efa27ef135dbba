//! `model.summary()`: a table of the state tree.

use std::fmt;

use candle_core::DType;

use crate::{NamedState, StateKind};

/// One variable of a [`Summary`].
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// `.`-joined state path.
    pub path: String,
    /// Param, BatchStat, RngKey or RngCount.
    pub kind: StateKind,
    /// The value's shape.
    pub shape: Vec<usize>,
    /// The value's dtype.
    pub dtype: DType,
    /// Number of scalars.
    pub count: usize,
}

/// Every variable of a module with totals per kind; `Display` prints a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// One row per variable, in visiting order.
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// Summarizes a state tree as [`Module::state`](crate::Module::state) lists it
    /// (`Summary::of_state(model.state())`, what `model.summary()` does).
    pub fn of_state(state: Vec<NamedState<'_>>) -> Self {
        let rows = state
            .into_iter()
            .map(|(path, var)| {
                let shape = var.dims();
                SummaryRow {
                    count: shape.iter().product(),
                    path,
                    kind: var.kind(),
                    shape,
                    dtype: var.dtype(),
                }
            })
            .collect();
        Self { rows }
    }

    /// Total scalars of one kind.
    pub fn total(&self, kind: StateKind) -> usize {
        self.rows
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.count)
            .sum()
    }

    /// Total bytes of all variables.
    pub fn bytes(&self) -> usize {
        self.rows
            .iter()
            .map(|r| r.count * r.dtype.size_in_bytes())
            .sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = |s: &[usize]| format!("{s:?}");
        let w_path = self
            .rows
            .iter()
            .map(|r| r.path.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let w_shape = self
            .rows
            .iter()
            .map(|r| shape(&r.shape).len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<w_path$}  {:<9}  {:<w_shape$}  {:<5}  {:>10}",
            "path", "kind", "shape", "dtype", "count"
        )?;
        writeln!(f, "{}", "-".repeat(w_path + w_shape + 34))?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<w_path$}  {:<9}  {:<w_shape$}  {:<5}  {:>10}",
                r.path,
                r.kind.to_string(),
                shape(&r.shape),
                r.dtype.as_str(),
                r.count
            )?;
        }
        writeln!(f, "{}", "-".repeat(w_path + w_shape + 34))?;
        writeln!(
            f,
            "params: {}  batch stats: {}  rng streams: {}  total bytes: {}",
            self.total(StateKind::Param),
            self.total(StateKind::BatchStat),
            self.rows
                .iter()
                .filter(|r| r.kind == StateKind::RngCount)
                .count(),
            self.bytes()
        )
    }
}
