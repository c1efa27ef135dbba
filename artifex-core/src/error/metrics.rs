//! [`MetricsError`], the errors of [`metrics`](crate::metrics) (re-exported there).

/// Input that a metric cannot be computed on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// A feature set is not a matrix `(N, D)`.
    #[error("metrics: {set} features must be a matrix (N, D), got shape {shape:?}")]
    NotMatrix {
        /// Which set (`real`, `generated`, ...).
        set: String,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// Two inputs that must have the same shape (apart from the number of samples) do not.
    #[error(
        "metrics: {what}: {first_name} has shape {first:?} but {second_name} has shape {second:?}"
    )]
    ShapeMismatch {
        /// What was compared, e.g. `feature widths differ` or `image shapes differ`.
        what: String,
        /// The name of the first input.
        first_name: String,
        /// Its shape.
        first: Vec<usize>,
        /// The name of the second input.
        second_name: String,
        /// Its shape.
        second: Vec<usize>,
    },

    /// Too few samples for a full-rank covariance.
    #[error(
        "metrics: {set} features: {samples} samples of {dims} dimensions give a singular \
         covariance (its rank is at most {samples} - 1 < {dims}); the Fréchet distance needs \
         more samples than feature dimensions"
    )]
    SingularCovariance {
        /// Which set.
        set: String,
        /// Its number of samples.
        samples: usize,
        /// Its feature width.
        dims: usize,
    },

    /// A feature (or an input image's pixel) is NaN or infinite.
    #[error("metrics: {set}: value at row {row}, column {column} is not finite ({value})")]
    NonFinite {
        /// Which set, e.g. `generated features` or `generated images`.
        set: String,
        /// The sample.
        row: usize,
        /// The feature dimension (the flattened pixel index for images).
        column: usize,
        /// The value.
        value: f64,
    },

    /// The neighbourhood size of precision/recall does not fit the sets.
    #[error(
        "metrics: precision/recall needs 1 <= k < samples of each set, got k = {k} with \
         {samples} {set} samples"
    )]
    InvalidK {
        /// The requested k.
        k: usize,
        /// Which set is too small.
        set: String,
        /// Its number of samples.
        samples: usize,
    },

    /// The symmetric eigendecomposition did not converge.
    #[error("metrics: the eigendecomposition of a {dims}x{dims} {what} did not converge")]
    NoConvergence {
        /// Which matrix.
        what: String,
        /// Its size.
        dims: usize,
    },
}
