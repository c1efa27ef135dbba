//! Learning-rate schedules, as optax's.

use crate::{Error, Result};

/// A learning rate as a function of the number of updates already applied.
///
/// ```
/// use artifex_core::optim::Schedule;
/// let s = Schedule::WarmupCosine { peak: 1e-3, warmup_steps: 100, decay_steps: 1000, end: 1e-5 };
/// assert_eq!(s.lr_at(0), 0.0);
/// assert!((s.lr_at(100) - 1e-3).abs() < 1e-12);
/// assert!((s.lr_at(5000) - 1e-5).abs() < 1e-12);
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Schedule {
    /// The same rate at every step.
    Constant(f64),
    /// `optax.warmup_cosine_decay_schedule(init_value=0, peak, warmup_steps, decay_steps, end)`:
    /// linear from 0 to `peak` over `warmup_steps`, then cosine from `peak` to `end` until
    /// step `decay_steps` (which counts the warmup), then `end`.
    WarmupCosine {
        /// The rate at the end of the warmup.
        peak: f64,
        /// Steps of linear warmup (0: start at `peak`).
        warmup_steps: u64,
        /// The step at which the decay reaches `end`, warmup included (> `warmup_steps`).
        decay_steps: u64,
        /// The final rate.
        end: f64,
    },
}

impl Schedule {
    /// The rate used for the update that follows `step` earlier updates.
    pub fn lr_at(&self, step: u64) -> f64 {
        match *self {
            Schedule::Constant(lr) => lr,
            Schedule::WarmupCosine {
                peak,
                warmup_steps,
                decay_steps,
                end,
            } => {
                if step < warmup_steps {
                    // optax.linear_schedule(0, peak, warmup_steps)
                    let frac = 1.0 - step as f64 / warmup_steps as f64;
                    return (0.0 - peak) * frac + peak;
                }
                let cos_steps = decay_steps.saturating_sub(warmup_steps);
                if cos_steps == 0 {
                    return end;
                }
                // optax.cosine_decay_schedule(peak, cos_steps, alpha = end / peak)
                let count = (step - warmup_steps).min(cos_steps) as f64;
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * count / cos_steps as f64).cos());
                if peak == 0.0 {
                    return (peak - end) * cosine + end;
                }
                let alpha = end / peak;
                peak * ((1.0 - alpha) * cosine + alpha)
            }
        }
    }

    /// Checks that the rates are finite and the steps consistent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::config("Schedule", m));
        match *self {
            Schedule::Constant(lr) if !lr.is_finite() => bad(format!("learning rate {lr}")),
            Schedule::WarmupCosine { peak, end, .. } if !peak.is_finite() || !end.is_finite() => {
                bad(format!("peak {peak} and end {end} must be finite"))
            }
            Schedule::WarmupCosine {
                warmup_steps,
                decay_steps,
                ..
            } if decay_steps <= warmup_steps => bad(format!(
                "decay_steps ({decay_steps}) must exceed warmup_steps ({warmup_steps}): they count the warmup"
            )),
            _ => Ok(()),
        }
    }
}

impl From<f64> for Schedule {
    fn from(lr: f64) -> Self {
        Schedule::Constant(lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn constant() {
        assert_eq!(Schedule::from(0.1).lr_at(12345), 0.1);
    }

    #[test]
    fn warmup_cosine_values() {
        let s = Schedule::WarmupCosine {
            peak: 1.0,
            warmup_steps: 10,
            decay_steps: 110,
            end: 0.1,
        };
        s.validate().unwrap();
        let expect = [
            (0, 0.0),
            (5, 0.5),
            (10, 1.0),
            (
                35,
                0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos()),
            ),
            (60, 0.55),
            (110, 0.1),
            (1000, 0.1),
        ];
        for (step, lr) in expect {
            assert!(
                close(s.lr_at(step), lr),
                "step {step}: {} vs {lr}",
                s.lr_at(step)
            );
        }
    }

    #[test]
    fn no_warmup_and_invalid() {
        let s = Schedule::WarmupCosine {
            peak: 2.0,
            warmup_steps: 0,
            decay_steps: 4,
            end: 0.0,
        };
        assert!(close(s.lr_at(0), 2.0) && close(s.lr_at(2), 1.0) && close(s.lr_at(4), 0.0));
        let bad = Schedule::WarmupCosine {
            peak: 1.0,
            warmup_steps: 5,
            decay_steps: 5,
            end: 0.0,
        };
        assert!(bad.validate().is_err());
        assert_eq!(bad.lr_at(7), 0.0);
        assert!(Schedule::Constant(f64::NAN).validate().is_err());
    }
}
