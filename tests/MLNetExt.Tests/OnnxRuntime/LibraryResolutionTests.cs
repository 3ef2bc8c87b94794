using MLNetExt.OnnxRuntime;

namespace MLNetExt.Tests.OnnxRuntime;

[TestClass]
public sealed class LibraryResolutionTests
{
    private static DirectoryInfo Temp() => Directory.CreateTempSubdirectory("mlnetext-ort-resolve-");

    private static string Touch(string dir)
    {
        Directory.CreateDirectory(dir);
        var p = Path.Combine(dir, OnnxRuntimeLibrary.FileName);
        File.WriteAllBytes(p, []);
        return p;
    }

    [TestMethod]
    public void Order_IsExplicitThenEnvironmentThenApplicationThenCache()
    {
        var t = Temp();
        try
        {
            string exp = Touch(Path.Combine(t.FullName, "explicit")), env = Touch(Path.Combine(t.FullName, "env"));
            string app = Touch(Path.Combine(t.FullName, "app")), cache = Touch(Path.Combine(t.FullName, "cache"));
            string appDir = Path.GetDirectoryName(app)!, cacheDir = Path.GetDirectoryName(cache)!;
            var c = OnnxRuntimeLibrary.Candidates(exp, env, appDir, cacheDir);
            CollectionAssert.AreEqual(new[] { "explicit path option", "environment variable MLNETEXT_ONNXRUNTIME", "application directory", "set-up cache (tools/setup.sh)" },
                c.Select(x => x.Source).ToArray());
            Assert.AreEqual(exp, OnnxRuntimeLibrary.Resolve(c));
            Assert.AreEqual(env, OnnxRuntimeLibrary.Resolve(OnnxRuntimeLibrary.Candidates(null, env, appDir, cacheDir)));
            // the environment variable may name the folder
            Assert.AreEqual(env, OnnxRuntimeLibrary.Resolve(OnnxRuntimeLibrary.Candidates(null, Path.GetDirectoryName(env), appDir, cacheDir)));
            Assert.AreEqual(app, OnnxRuntimeLibrary.Resolve(OnnxRuntimeLibrary.Candidates(null, null, appDir, cacheDir)));
            File.Delete(app);
            Assert.AreEqual(cache, OnnxRuntimeLibrary.Resolve(OnnxRuntimeLibrary.Candidates(" ", "", appDir, cacheDir)));
        }
        finally { t.Delete(recursive: true); }
    }

    [TestMethod]
    public void GivenPaths_MustExist()
    {
        var t = Temp();
        try
        {
            var cacheDir = Path.GetDirectoryName(Touch(Path.Combine(t.FullName, "cache")))!;
            var missing = Path.Combine(t.FullName, "nowhere", "libonnxruntime.so.1");
            var e = Assert.ThrowsExactly<DllNotFoundException>(() => OnnxRuntimeLibrary.Resolve(OnnxRuntimeLibrary.Candidates(missing, null, t.FullName, cacheDir)));
            StringAssert.StartsWith(e.Message, $"ONNX Runtime library not found: the explicit path option names '{missing}', which does not exist.");
            e = Assert.ThrowsExactly<DllNotFoundException>(() => OnnxRuntimeLibrary.Resolve(OnnxRuntimeLibrary.Candidates(null, missing, t.FullName, cacheDir)));
            StringAssert.Contains(e.Message, $"the environment variable MLNETEXT_ONNXRUNTIME names '{missing}'");
            StringAssert.Contains(e.Message, "tools/setup.sh");
        }
        finally { t.Delete(recursive: true); }
    }

    [TestMethod]
    public void Missing_SaysWhereItLookedAndHowToGetIt()
    {
        var t = Temp();
        try
        {
            string app = Path.Combine(t.FullName, "app"), cache = Path.Combine(t.FullName, "cache");
            var e = Assert.ThrowsExactly<DllNotFoundException>(() => OnnxRuntimeLibrary.Resolve(OnnxRuntimeLibrary.Candidates(null, null, app, cache)));
            var expected = $"ONNX Runtime library (libonnxruntime.so.1) not found. Looked in:\n" +
                $"  - explicit path option: (not given)\n" +
                $"  - environment variable MLNETEXT_ONNXRUNTIME: (not given)\n" +
                $"  - application directory: {app}/libonnxruntime.so.1 (missing)\n" +
                $"  - set-up cache (tools/setup.sh): {cache}/libonnxruntime.so.1 (missing)\n" +
                $"Run tools/setup.sh once (it fetches libonnxruntime.so.1 from npm's onnxruntime-node@1.30.0 into {OnnxRuntimeLibrary.CacheDirectory}), " +
                $"or point MLNETEXT_ONNXRUNTIME at an existing libonnxruntime.so.1.";
            Assert.AreEqual(expected, e.Message);
        }
        finally { t.Delete(recursive: true); }
    }

    [TestMethod]
    public void ASecondDifferentLibrary_IsRefusedOnceOneIsLoaded()
    {
        var loaded = OnnxRuntimeLibrary.LoadedPath;
        OnnxRuntimeLibrary.Initialize(loaded); // the same file: fine
        OnnxRuntimeLibrary.Initialize(Path.GetDirectoryName(loaded)); // its folder: fine
        var t = Temp();
        try
        {
            var other = Touch(t.FullName);
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => OnnxRuntimeLibrary.Initialize(other));
            Assert.AreEqual($"ONNX Runtime is already loaded from '{loaded}' in this process; '{other}' cannot be loaded as well (one ONNX Runtime library per process).", e.Message);
        }
        finally { t.Delete(recursive: true); }
    }
}
