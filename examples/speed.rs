use ferlite::model::*; use ferlite::nn::*; use rand::SeedableRng; use std::time::Instant;
fn main() {
    let mut net = Network::new(NetworkConfig::paper(), 0);
    let mut opt = optim::Optimizer::new(Default::default(), net.param_layout.decay_mask());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let bs = 64;
    let labels: Vec<usize> = (0..bs).map(|i| i % 7).collect();
    for it in 0..5 {
        let x = Tensor::from_vec([bs,1,48,48], (0..bs*2304).map(|i| ((i*7919)%255) as f32/255.0).collect());
        let t = Instant::now();
        let (logits, tape) = net.forward_train(x, &mut rng);
        let t1 = t.elapsed();
        let out = loss::cross_entropy(&logits.data, &labels, 7, 0.1, None);
        let mut grads = vec![0.0; net.num_params()];
        net.backward(&tape, Tensor::from_vec(logits.shape, out.grad), &mut grads);
        let t2 = t.elapsed();
        let mut p = std::mem::take(&mut net.params); opt.step(&mut p, &grads, 0.01); net.params = p;
        let dt = t.elapsed().as_secs_f64();
        println!("iter {it}: fwd {:.3}s bwd {:.3}s total {:.3}s  {:.1} img/s loss {:.3}", t1.as_secs_f64(), (t2-t1).as_secs_f64(), dt, bs as f64/dt, out.loss);
    }
    let x = Tensor::zeros([1,1,48,48]);
    let t = Instant::now(); for _ in 0..50 { net.forward(&x); } println!("b1 {:.2} ms", t.elapsed().as_secs_f64()*1000.0/50.0);
}
