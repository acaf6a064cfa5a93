//! `ferlite export --onnx`: the trained network as an ONNX model (opset 13), written from the
//! fast path's folded layers, so ONNX Runtime, PyTorch (`onnx2torch`) or any other runtime can run
//! it and be compared with ferlite on the same weights.
//!
//! Input `face` `[batch, 1, 48, 48]`: the face after ferlite's preprocessing (each face
//! standardised to mean 0, std 1: see `emotion::normalize_pixels`).
//! Output `logits` `[batch, 7]` in `emotion::EMOTIONS` order.
//!
//! ONNX is protobuf; the handful of messages needed are encoded here by hand (field numbers from
//! `onnx/onnx.proto`) rather than pulling in a protobuf code generator for one writer.

use crate::emotion::FACE_SIZE;
use crate::infer::{Dense, FastNetwork, FoldedConv};
use crate::model::Network;

/// Protobuf wire format: just what ONNX's messages need.
mod pb {
    pub fn varint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }

    pub fn int(buf: &mut Vec<u8>, field: u32, v: i64) {
        varint(buf, (field as u64) << 3);
        varint(buf, v as u64);
    }

    pub fn bytes(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
        varint(buf, ((field as u64) << 3) | 2);
        varint(buf, data.len() as u64);
        buf.extend_from_slice(data);
    }

    pub fn string(buf: &mut Vec<u8>, field: u32, s: &str) {
        bytes(buf, field, s.as_bytes());
    }
}

const FLOAT: i64 = 1; // TensorProto.DataType.FLOAT
const ATTR_INT: i64 = 2;
const ATTR_INTS: i64 = 7;

/// A TensorProto with raw little-endian f32 data.
fn tensor(name: &str, dims: &[usize], values: &[f32]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<usize>(), values.len(), "{name}: shape does not match data");
    let mut t = Vec::new();
    for &d in dims {
        pb::int(&mut t, 1, d as i64);
    }
    pb::int(&mut t, 2, FLOAT);
    pb::string(&mut t, 8, name);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    pb::bytes(&mut t, 9, &raw);
    t
}

enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str, attrs: &[Attr]) -> Vec<u8> {
    let mut n = Vec::new();
    for i in inputs {
        pb::string(&mut n, 1, i);
    }
    pb::string(&mut n, 2, output);
    pb::string(&mut n, 3, name);
    pb::string(&mut n, 4, op);
    for attr in attrs {
        let mut a = Vec::new();
        match attr {
            Attr::Int(key, v) => {
                pb::string(&mut a, 1, key);
                pb::int(&mut a, 3, *v);
                pb::int(&mut a, 20, ATTR_INT);
            }
            Attr::Ints(key, vs) => {
                pb::string(&mut a, 1, key);
                for v in *vs {
                    pb::int(&mut a, 8, *v);
                }
                pb::int(&mut a, 20, ATTR_INTS);
            }
        }
        pb::bytes(&mut n, 5, &a);
    }
    n
}

/// ValueInfoProto of a float tensor; `None` dims are the symbolic batch size.
fn value_info(name: &str, dims: &[Option<usize>]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Some(v) => pb::int(&mut dim, 1, *v as i64),
            None => pb::string(&mut dim, 2, "batch"),
        }
        pb::bytes(&mut shape, 1, &dim);
    }
    let mut tensor_type = Vec::new();
    pb::int(&mut tensor_type, 1, FLOAT);
    pb::bytes(&mut tensor_type, 2, &shape);
    let mut type_proto = Vec::new();
    pb::bytes(&mut type_proto, 1, &tensor_type);
    let mut v = Vec::new();
    pb::string(&mut v, 1, name);
    pb::bytes(&mut v, 2, &type_proto);
    v
}

/// Accumulates nodes and initializers, naming each value after the node that makes it.
#[derive(Default)]
struct Graph {
    nodes: Vec<Vec<u8>>,
    initializers: Vec<Vec<u8>>,
}

impl Graph {
    fn op(&mut self, op: &str, name: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        self.nodes.push(node(op, name, inputs, name, attrs));
        name.to_string()
    }

    fn conv(&mut self, name: &str, input: &str, c: &FoldedConv) -> String {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        self.initializers.push(tensor(&w, &[c.cout, c.cin, c.kernel, c.kernel], &c.weight));
        self.initializers.push(tensor(&b, &[c.cout], &c.bias));
        let k = c.kernel as i64;
        let p = k / 2;
        self.op("Conv", name, &[input, &w, &b], &[Attr::Ints("kernel_shape", &[k, k]), Attr::Ints("pads", &[p, p, p, p]), Attr::Ints("strides", &[1, 1])])
    }

    fn dense(&mut self, name: &str, input: &str, d: &Dense) -> String {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        self.initializers.push(tensor(&w, &[d.outputs, d.inputs], &d.weight));
        self.initializers.push(tensor(&b, &[d.outputs], &d.bias));
        self.op("Gemm", name, &[input, &w, &b], &[Attr::Int("transB", 1)])
    }
}

/// The ONNX model bytes for `network` (its folded form).
pub fn to_onnx(network: &Network) -> Vec<u8> {
    let fast: FastNetwork = network.fold();
    let mut g = Graph::default();
    let stem = g.conv("stem", "face", &fast.stem);
    let mut x = g.op("Relu", "stem.relu", &[&stem], &[]);
    for (i, stage) in fast.stages.iter().enumerate() {
        let s = format!("stage{}", i + 1);
        let residual = match &stage.shortcut {
            Some(c) => g.conv(&format!("{s}.shortcut"), &x, c),
            None => x.clone(),
        };
        let a = g.conv(&format!("{s}.a"), &x, &stage.a);
        let a = g.op("Relu", &format!("{s}.a.relu"), &[&a], &[]);
        let b = g.conv(&format!("{s}.b"), &a, &stage.b);
        let b = g.op("Relu", &format!("{s}.b.relu"), &[&b], &[]);
        let c = g.conv(&format!("{s}.c"), &b, &stage.c);
        let sum = g.op("Add", &format!("{s}.add"), &[&c, &residual], &[]);
        let sum = g.op("Relu", &format!("{s}.relu"), &[&sum], &[]);
        x = g.op("MaxPool", &format!("{s}.pool"), &[&sum], &[Attr::Ints("kernel_shape", &[2, 2]), Attr::Ints("strides", &[2, 2])]);
    }
    let pooled = g.op("GlobalAveragePool", "gap", &[&x], &[]);
    let flat = g.op("Flatten", "flatten", &[&pooled], &[Attr::Int("axis", 1)]);
    let hidden = g.dense("fc1", &flat, &fast.fc1);
    let hidden = g.op("Relu", "fc1.relu", &[&hidden], &[]);
    let fc2 = g.dense("fc2", &hidden, &fast.fc2);
    g.nodes.push(node("Identity", "logits", &[&fc2], "logits", &[]));

    let mut graph = Vec::new();
    for n in &g.nodes {
        pb::bytes(&mut graph, 1, n);
    }
    pb::string(&mut graph, 2, "ferlite");
    for t in &g.initializers {
        pb::bytes(&mut graph, 5, t);
    }
    let doc = "ferlite emotion classifier. Input: 48x48 gray faces, each standardised to mean 0 and std 1. Output: logits for angry, disgust, fear, happy, sad, surprise, neutral.";
    pb::string(&mut graph, 10, doc);
    pb::bytes(&mut graph, 11, &value_info("face", &[None, Some(1), Some(FACE_SIZE), Some(FACE_SIZE)]));
    pb::bytes(&mut graph, 12, &value_info("logits", &[None, Some(fast.classes())]));

    let mut model = Vec::new();
    pb::int(&mut model, 1, 7); // IR version 7 (ONNX 1.8+)
    pb::string(&mut model, 2, "ferlite");
    pb::string(&mut model, 3, env!("CARGO_PKG_VERSION"));
    pb::bytes(&mut model, 7, &graph);
    let mut opset = Vec::new();
    pb::string(&mut opset, 1, "");
    pb::int(&mut opset, 2, 13);
    pb::bytes(&mut model, 8, &opset);
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_base_128() {
        let mut buf = Vec::new();
        pb::varint(&mut buf, 300);
        assert_eq!(buf, [0xac, 0x02]);
    }

    #[test]
    fn model_holds_every_parameter_once() {
        let net = Network::new(crate::model::NetworkConfig::paper(), 1);
        let bytes = to_onnx(&net);
        // Folding drops the batch-norm scales (γ, β become the conv bias), so the file holds the
        // conv weights, one bias per conv channel and the dense layers, as 4-byte floats.
        let fast = net.fold();
        let convs = std::iter::once(&fast.stem).chain(fast.stages.iter().flat_map(|s| [&s.a, &s.b, &s.c].into_iter().chain(&s.shortcut)));
        let floats: usize = convs.map(|c| c.weight.len() + c.bias.len()).sum::<usize>() + [&fast.fc1, &fast.fc2].iter().map(|d| d.weight.len() + d.bias.len()).sum::<usize>();
        assert!(bytes.len() > floats * 4 && bytes.len() < floats * 4 + 16_384, "{} bytes for {floats} floats", bytes.len());
    }
}
