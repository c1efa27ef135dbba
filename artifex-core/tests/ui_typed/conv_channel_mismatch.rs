// Conv2d<1, 16, ..> followed by Conv2d<8, 32, ..>: the channels disagree.
use artifex_core::prelude::*;
use artifex_core::typed::{self, Conv2d, ConvBackend, ConvSpec, Forward, Images, Relu, Same, Seq};

/// Any dynamic convolution; this one only records its channels.
#[derive(Module)]
struct AnyConv {
    #[config]
    channels: (usize, usize),
}

impl ConvBackend for AnyConv {
    fn build_conv(spec: &ConvSpec, _rngs: &mut Rngs) -> Result<Self> {
        Ok(AnyConv { channels: (spec.in_channels, spec.out_channels) })
    }
    fn channels(&self) -> (usize, usize) {
        self.channels
    }
    fn forward_nhwc(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.clone())
    }
}

type Net = Seq<(Conv2d<1, 16, 3, Same, AnyConv>, Relu, Conv2d<8, 32, 3, Same, AnyConv>)>;

fn features(net: &Net, x: &typed::Tensor<Images<28, 28, 1>>) {
    let _ = net.forward(x);
}

fn main() {}
