using MLNetExt.Nn;
using MLNetExt.Torch;

namespace MLNetExt.Vision.Layers;

/// <summary>The linear classifier of the token families (TransNeXt, SMT, MixFormer: <c>head</c>), initialised by the
/// family's policy, or an identity for 0 classes (the official <c>nn.Identity()</c>).</summary>
internal static class ClassifierHead
{
    public static Module<Tensor, Tensor> Linear(long features, int numClasses, WeightInit init) =>
        numClasses > 0 ? init.NewLinear(features, numClasses) : new Identity();
}
