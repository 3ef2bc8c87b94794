// Engine basics: define a module with PyTorch names, train it with AdamW inside tensor scopes, and save its
// state_dict. Run: dotnet run --project samples/EngineBasics -c Release
using MLNetExt.Nn;
using MLNetExt.Optim;
using MLNetExt.Serialization;
using MLNetExt.Torch;

TorchRuntime.ManualSeed(42);
using var model = new TwoLayerNet(inputs: 4, hidden: 32, outputs: 1);
foreach (var (name, tensor) in model.StateDict())
    Console.WriteLine($"{name,-12} [{string.Join(", ", tensor.Shape)}]");

// Learn y = sum(x^2) on random points.
using var optimizer = new AdamW(model.Parameters(), lr: 1e-2, weightDecay: 0);
for (int step = 0; step <= 300; step++)
{
    using var scope = TensorScope.Begin();   // frees every temporary of this step
    var x = Tensor.Randn(new long[] { 64, 4 });
    var y = (x * x).Sum(1, keepDim: true);
    var loss = F.MseLoss(model.Call(x), y);
    optimizer.ZeroGrad();
    loss.Backward();
    optimizer.Step();
    if (step % 100 == 0) Console.WriteLine($"step {step,3}: loss {loss.ToDouble():F4}");
}

// Save the weights (written atomically) and load them into a fresh model; strict loading checks every key.
var path = Path.Combine(Path.GetTempPath(), "engine-basics.safetensors");
SafeTensors.Save(path, model.StateDict());
using var restored = new TwoLayerNet(inputs: 4, hidden: 32, outputs: 1);
using (var weights = SafeTensors.Load(path)) restored.LoadStateDict(weights);
Console.WriteLine($"saved {path} and reloaded {restored.StateDict().Count} tensors");

/// <summary>Linear → GELU → Linear, registered as "fc1" and "fc2" like its PyTorch twin.</summary>
sealed class TwoLayerNet : Module<Tensor, Tensor>
{
    readonly Linear _fc1, _fc2;

    public TwoLayerNet(int inputs, int hidden, int outputs)
    {
        _fc1 = RegisterModule("fc1", new Linear(inputs, hidden));
        _fc2 = RegisterModule("fc2", new Linear(hidden, outputs));
    }

    public override Tensor Forward(Tensor x)
    {
        using var h = _fc1.Call(x);
        using var a = F.Gelu(h);
        return _fc2.Call(a);
    }
}
