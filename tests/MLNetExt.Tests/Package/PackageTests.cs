using System.IO.Compression;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using MLNetExt.Tests.Architecture;

namespace MLNetExt.Tests.Package;

/// <summary>The NuGet package as a user gets it: <c>dotnet pack MLNetExt.sln</c> makes exactly one package (library,
/// XML docs, native bridge, README, licence, dependencies), and the package README's first C# program runs in a fresh
/// console project that references only the package, from a local feed.</summary>
[TestClass]
public sealed class PackageTests
{
    [TestMethod, TestCategory("Slow")]
    public void Pack_MakesOnePackage_AndItsReadmeProgramRunsInAFreshProject()
    {
        var root = LayerTests.RepositoryRoot();
        var work = Directory.CreateTempSubdirectory("mlnetext-package-");
        try
        {
            // the package (the solution is built already: tools/setup.sh)
            var feed = Path.Combine(work.FullName, "feed");
            var (code, output) = ChildProcess.Run("dotnet", $"pack MLNetExt.sln -c Release --no-build -nologo -o \"{feed}\"", root, 600);
            Assert.AreEqual(0, code, output);
            var packages = Directory.GetFiles(feed).Select(Path.GetFileName).ToList();
            string version = LibraryInfo.Version;
            CollectionAssert.AreEqual(new[] { $"MLNetExt.{version}.nupkg" }, packages, "one package, nothing for tests, samples, benchmarks or the CLI");

            using (var zip = ZipFile.OpenRead(Path.Combine(feed, packages[0]!)))
            {
                var entries = zip.Entries.Select(e => e.FullName).ToHashSet();
                foreach (var e in new[] { "lib/net10.0/MLNetExt.dll", "lib/net10.0/MLNetExt.xml", "runtimes/linux-x64/native/libmlnetext_native.so", "README.md", "LICENSE" })
                    Assert.Contains(e, entries);
                var nuspec = XDocument.Load(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal)).Open());
                var ns = nuspec.Root!.Name.Namespace;
                Assert.AreEqual(version, nuspec.Descendants(ns + "version").Single().Value);
                var dependencies = nuspec.Descendants(ns + "dependency").Select(d => d.Attribute("id")!.Value).ToHashSet();
                foreach (var d in new[] { "Microsoft.ML", "Microsoft.ML.ImageAnalytics", "Microsoft.ML.OnnxTransformer", "Microsoft.ML.OnnxRuntime.Managed", "Google.Protobuf" })
                    Assert.Contains(d, dependencies);
                Assert.DoesNotContain("Grpc.Tools", dependencies, "build-time only");
                using var readme = new StreamReader(zip.GetEntry("README.md")!.Open());
                Assert.AreEqual(File.ReadAllText(Path.Combine(root, "src", "PACKAGE.md")), readme.ReadToEnd());
            }

            // a fresh console project: the package from the local feed, everything else from the usual feed; its own
            // package folder so a package of the same version from an earlier run is never reused
            var app = Directory.CreateDirectory(Path.Combine(work.FullName, "app")).FullName;
            var globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="local" value="{feed}" />
                    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
                  </packageSources>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(app, "App.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <Nullable>enable</Nullable>
                    <RestorePackagesPath>packages</RestorePackagesPath>
                    <RestoreAdditionalProjectFallbackFolders>{globalPackages}</RestoreAdditionalProjectFallbackFolders>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="MLNetExt" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            var program = Regex.Match(File.ReadAllText(Path.Combine(root, "src", "PACKAGE.md")), "```csharp\n(.*?)```", RegexOptions.Singleline);
            Assert.IsTrue(program.Success, "PACKAGE.md has a C# code block");
            File.WriteAllText(Path.Combine(app, "Program.cs"), program.Groups[1].Value);

            // no hint where the development build is: the bridge must come from the package
            var environment = new Dictionary<string, string?> { ["MLNETEXT_NATIVE"] = null, ["LD_LIBRARY_PATH"] = null };
            (code, output) = ChildProcess.Run("dotnet", "run -c Release", app, 600, environment);
            Assert.AreEqual(0, code, output);
            StringAssert.Contains(output, "validation top-1:");
            StringAssert.Matches(output, new Regex(@"red_0 is predicted (red|green|blue) \(\d+ ?%\)"));
            Assert.IsTrue(File.Exists(Path.Combine(app, "bin", "Release", "net10.0", "runtimes", "linux-x64", "native", "libmlnetext_native.so")),
                "the bridge came with the package");
        }
        finally { work.Delete(recursive: true); }
    }
}
