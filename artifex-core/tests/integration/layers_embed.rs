//! Embed: lookups for every integer dtype, negative ids, range errors naming the path,
//! initialization statistics, gradients, `attend`.

use artifex_core::prelude::*;

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let f = *t.dims().last().expect("rank");
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("host")
        .chunks(f)
        .map(|c| c.to_vec())
        .collect()
}

#[test]
fn lookup_returns_table_rows_for_every_integer_dtype() -> Result<()> {
    let embed = Embed::new(10, 4, &mut Rngs::new(0))?;
    let table = rows(&embed.embedding);
    let ids = [[1u32, 9, 0], [3, 3, 7]];
    let want: Vec<Vec<f32>> = ids
        .iter()
        .flatten()
        .map(|&i| table[i as usize].clone())
        .collect();
    let u32_ids = Tensor::new(&ids, &Device::Cpu)?;
    for t in [
        u32_ids.clone(),
        u32_ids.to_dtype(DType::U8)?,
        u32_ids.to_dtype(DType::I64)?,
    ] {
        let y = embed.forward(&t)?;
        assert_eq!(y.dims(), &[2, 3, 4]);
        assert_eq!(rows(&y), want);
    }
    // Negative ids count from the end, as jnp.take.
    let y = embed.forward(&Tensor::new(&[-1i64, -10, 2], &Device::Cpu)?)?;
    assert_eq!(
        rows(&y),
        [table[9].clone(), table[0].clone(), table[2].clone()]
    );
    // A scalar id gives one vector; no ids give an empty batch.
    assert_eq!(
        embed.forward(&Tensor::new(4u32, &Device::Cpu)?)?.dims(),
        &[4]
    );
    let empty = Tensor::zeros((0, 3), DType::U32, &Device::Cpu)?;
    assert_eq!(embed.forward(&empty)?.dims(), &[0, 3, 4]);
    Ok(())
}

#[derive(Module)]
struct Lm {
    tok: Embed,
}

#[test]
fn out_of_range_and_float_ids_are_input_errors_naming_the_path() -> Result<()> {
    let mut lm = Lm {
        tok: Embed::new(10, 4, &mut Rngs::new(0))?,
    };
    lm.eval();
    let e = lm
        .tok
        .forward(&Tensor::new(&[3u32, 10], &Device::Cpu)?)
        .unwrap_err();
    assert!(matches!(e, Error::Input { .. }));
    assert_eq!(
        e.to_string(),
        "tok (Embed): invalid input: id 10 is out of range for 10 embeddings (valid: -10 to 9)"
    );
    let e = lm
        .tok
        .forward(&Tensor::new(&[-11i64], &Device::Cpu)?)
        .unwrap_err()
        .to_string();
    assert!(e.contains("id -11 is out of range"), "{e}");
    let e = lm
        .tok
        .forward(&Tensor::new(&[1.0f32], &Device::Cpu)?)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "tok (Embed): invalid input: ids must be integers, got F32"
    );
    assert!(Embed::new(0, 4, &mut Rngs::new(0)).is_err());
    assert!(Embed::new(4, 0, &mut Rngs::new(0)).is_err());
    Ok(())
}

#[test]
fn default_init_has_std_one_over_sqrt_features() -> Result<()> {
    let embed = Embed::new(2000, 64, &mut Rngs::new(5))?;
    let v: Vec<f64> = embed
        .embedding
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .map(|&x| x as f64)
        .collect();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(mean.abs() < 0.002, "mean {mean}");
    assert!((std / (1.0 / 8.0) - 1.0).abs() < 0.01, "std {std}");
    // A plain normal, not truncated: some entries beyond 2 standard deviations.
    assert!(v.iter().any(|x| x.abs() > 3.0 / 8.0));
    let paths: Vec<String> = embed.state().into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, ["embedding"]);
    Ok(())
}

#[test]
fn gradients_accumulate_over_repeated_ids_and_attend_is_tied() -> Result<()> {
    let embed = Embed::new(5, 3, &mut Rngs::new(1))?;
    let y = embed.forward(&Tensor::new(&[2u32, 2, 4, 0], &Device::Cpu)?)?;
    let grads = y.sum_all()?.backward()?;
    let g = rows(grads.get(&embed.embedding).expect("grad"));
    let counts = [1.0f32, 0.0, 2.0, 0.0, 1.0];
    for (row, &c) in g.iter().zip(&counts) {
        assert_eq!(row, &vec![c; 3]);
    }
    let q = Tensor::new(&[[1f32, 0.0, 2.0], [0.5, -1.0, 0.0]], &Device::Cpu)?;
    let logits = embed.attend(&q)?;
    assert_eq!(logits.dims(), &[2, 5]);
    let want = q.matmul(&embed.embedding.t()?)?;
    assert_eq!(rows(&logits), rows(&want));
    let e = embed.attend(&Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?);
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("expected input of shape [*, 3]"));
    Ok(())
}
