// LoaderBench --data DIR --workers N [--batch B] [--size S] [--epochs E] [--warmup W] [--no-dct] [--seed S]
// Loads every image under DIR (a class-folder set, or train/ + val/ class folders: both are used) through the
// MLNetExt DataLoader with decode + RandomResizedCrop(S, bilinear) + horizontal flip + normalise, batches of
// float32 NCHW engine tensors, and prints one JSON line: images/s over the timed epochs.
using System.Diagnostics;
using System.Text.Json;
using MLNetExt.Data;
using MLNetExt.Torch;
using MLNetExt.Transforms;
using MLNetExt.Imaging;

string data = "";
int workers = Environment.ProcessorCount, batch = 32, size = 224, epochs = 3, warmup = 1;
ulong seed = 0;
bool dct = true, profile = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--data": data = args[++i]; break;
        case "--workers": workers = int.Parse(args[++i]); break;
        case "--batch": batch = int.Parse(args[++i]); break;
        case "--size": size = int.Parse(args[++i]); break;
        case "--epochs": epochs = int.Parse(args[++i]); break;
        case "--warmup": warmup = int.Parse(args[++i]); break;
        case "--seed": seed = ulong.Parse(args[++i]); break;
        case "--no-dct": dct = false; break;
        case "--profile": profile = true; break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}
if (data == "") { Console.Error.WriteLine("--data DIR is required"); return 2; }

var (train, val) = ImageDataset.FromFolders(data);
var items = train.Items.Concat(val?.Items ?? []).ToList();
var ds = new ImageDataset(data, train.Classes, items);
var pipeline = new ImagePipeline(size, size, GeometryMode.RandomResizedCrop, Interpolation.Bilinear)
{
    Augmentations = [new RandomHorizontalFlip(0.5)],
    Normalize = Normalize.ImageNet,
    DctScaling = dct,
};
var loader = new DataLoader(ds, pipeline, new LoaderOptions { BatchSize = batch, Workers = workers, Prefetch = 2, Shuffle = true, Seed = seed });

if (profile)
{
    // Single-threaded phase times (thread CPU time, so other load on the machine does not count) over every
    // image (after one warm-up pass), in ms per image.
    var phase = new double[5];
    for (int pass = 0; pass < 2; pass++)
    {
        Array.Fill(phase, 0);
        var dst = new float[pipeline.SampleLength];
        for (int i = 0; i < ds.Count; i++)
        {
            var rng = Rng.For(seed, pass, i);
            var t = ThreadCpu.Now();
            var bytes = ds.Items[i].ReadBytes();
            phase[0] += (ThreadCpu.Now() - t) / 1e6; t = ThreadCpu.Now();
            var info = ImageDecoder.ReadInfo(bytes);
            var plan = pipeline.Plan(info.Width, info.Height, rng);
            var img = dct ? ImageDecoder.Decode(bytes, plan.MinWidth, plan.MinHeight) : ImageDecoder.Decode(bytes);
            phase[1] += (ThreadCpu.Now() - t) / 1e6; t = ThreadCpu.Now();
            var g = pipeline.ApplyGeometry(img, info.Width, info.Height, plan);
            phase[2] += (ThreadCpu.Now() - t) / 1e6; t = ThreadCpu.Now();
            foreach (var a in pipeline.Augmentations) g = a.Apply(g, rng);
            phase[3] += (ThreadCpu.Now() - t) / 1e6; t = ThreadCpu.Now();
            pipeline.Normalize.Apply(g, dst);
            phase[4] += (ThreadCpu.Now() - t) / 1e6;
        }
    }
    Console.WriteLine(JsonSerializer.Serialize(new
    {
        side = "cs-profile", dct, images = ds.Count,
        read_ms = phase[0] / ds.Count, decode_ms = phase[1] / ds.Count, geometry_ms = phase[2] / ds.Count,
        augment_ms = phase[3] / ds.Count, normalize_ms = phase[4] / ds.Count,
    }));
    return 0;
}

double checksum = 0;
long RunEpoch(int epoch)
{
    long n = 0;
    foreach (var b in loader.GetEpoch(epoch))
    {
        using (b)
        {
            n += b.Count;
            checksum += b.Labels.ToArray<long>().Sum();
        }
    }
    return n;
}

Tensor.Zeros([1]).Dispose(); // load libtorch before timing
for (int e = 0; e < warmup; e++) RunEpoch(-1 - e);
var times = new List<double>();
long images = 0;
for (int e = 0; e < epochs; e++)
{
    var sw = Stopwatch.StartNew();
    images += RunEpoch(e);
    times.Add(sw.Elapsed.TotalSeconds);
}
double total = times.Sum();
Console.WriteLine(JsonSerializer.Serialize(new
{
    side = "cs",
    workers,
    batch,
    size,
    dct,
    images,
    epochs,
    seconds = total,
    ips = images / total,
    epoch_s = times,
    skipped = loader.Skipped.Count,
    gc_pause_s = GC.GetTotalPauseDuration().TotalSeconds,
    gc_gen0 = GC.CollectionCount(0),
    gc_gen2 = GC.CollectionCount(2),
    cpu_s = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds,
    dataset = ds.Count,
}));
return 0;

static class ThreadCpu
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    static extern int ClockGetTime(int clock, out TimeSpec ts);

    struct TimeSpec { public long Sec, Nsec; }

    /// <summary>CPU time of the calling thread in nanoseconds (CLOCK_THREAD_CPUTIME_ID).</summary>
    public static long Now()
    {
        ClockGetTime(3, out var ts);
        return ts.Sec * 1_000_000_000 + ts.Nsec;
    }
}
