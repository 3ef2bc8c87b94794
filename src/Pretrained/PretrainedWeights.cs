using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using MLNetExt.Vision;

namespace MLNetExt.Pretrained;

/// <summary>A download that cannot succeed as asked (not found, offline, wrong file): the message names the weights,
/// the URL and what to do.</summary>
public sealed class WeightsDownloadException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>How far a download is: bytes received of the total (null when the server does not say).</summary>
public sealed record DownloadProgress(string FileName, long Received, long? Total);

/// <summary>
/// Official pretrained weights by name: downloaded once into a cache and verified, then loaded from there.
/// <list type="bullet">
/// <item>Cache: <c>$MLNETEXT_CACHE/weights</c>, else <c>$XDG_CACHE_HOME/mlnetext/weights</c>, else <c>~/.cache/mlnetext/weights</c>.
/// A file is placed there (renamed into place) only when complete and verified; a partial download stays as
/// <c>NAME.part</c> and the next attempt resumes it with an HTTP Range request.</item>
/// <item>Network: streaming, redirects followed (GitHub release assets redirect), a timeout on every read, retries with
/// backoff on connection failures, truncated bodies and 5xx/429 answers; proxies from HTTP_PROXY/HTTPS_PROXY/NO_PROXY.
/// A lock file lets one process download while others wait for its result.</item>
/// <item><c>MLNETEXT_OFFLINE=1</c>: the cache only, with an error naming the file to place there.
/// <c>MLNETEXT_WEIGHTS_MIRROR=http://host:port</c>: the scheme and host of every official URL replaced, the path kept.</item>
/// <item>Verification: the published size and SHA-256 when known (a mismatch is an error; with
/// <c>MLNETEXT_WEIGHTS_CHECK=structure</c> a warning); without a hash, and in structure mode, the file must load
/// strictly into its variant (keys, shapes, parameter count) before it is cached.</item>
/// </list>
/// </summary>
public static class PretrainedWeights
{
    /// <summary>Tries per download before giving up (tests lower it); the wait doubles from <see cref="RetryDelay"/>.</summary>
    internal static int Attempts { get; set; } = 4;
    internal static TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>A read that brings nothing for this long fails the attempt.</summary>
    internal static TimeSpan ReadTimeout { get; set; } = TimeSpan.FromSeconds(60);

    static readonly HttpClient s_http = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = true, MaxAutomaticRedirections = 10, ConnectTimeout = TimeSpan.FromSeconds(30), AutomaticDecompression = DecompressionMethods.None,
    })
    { Timeout = Timeout.InfiniteTimeSpan };

    /// <summary>The folder downloaded weights are kept in.</summary>
    public static string CacheDirectory
    {
        get
        {
            var root = Environment.GetEnvironmentVariable("MLNETEXT_CACHE") is { Length: > 0 } c ? c
                : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
                    : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "mlnetext");
            return Path.Combine(root, "weights");
        }
    }

    /// <summary>A progress callback that says one line per tenth of the file ("NAME: x MB of y MB"; every 64 MB when
    /// the size is unknown), for logs that cannot redraw a bar.</summary>
    public static Action<DownloadProgress> EveryTenth(Action<string> say)
    {
        long last = -1;
        return p =>
        {
            long step = p.Total is long t && t > 0 ? 10 * p.Received / t : p.Received >> 26;
            if (step == last) return;
            last = step;
            say($"{p.FileName}: {p.Received / 1048576.0:F1} MB" + (p.Total is long total ? $" of {total / 1048576.0:F1} MB" : ""));
        };
    }

    /// <summary>Where <paramref name="checkpoint"/> lives in the cache (it may not be there yet).</summary>
    public static string CachePath(PretrainedCheckpoint checkpoint) => Path.Combine(CacheDirectory, checkpoint.FileName);

    /// <summary>The URL a checkpoint is fetched from: the official one, or its path on <c>MLNETEXT_WEIGHTS_MIRROR</c>.</summary>
    public static string SourceUrl(PretrainedCheckpoint checkpoint)
    {
        var mirror = Environment.GetEnvironmentVariable("MLNETEXT_WEIGHTS_MIRROR");
        if (string.IsNullOrEmpty(mirror)) return checkpoint.Url;
        if (!Uri.TryCreate(mirror, UriKind.Absolute, out var m) || (m.Scheme != "http" && m.Scheme != "https"))
            throw new WeightsDownloadException($"MLNETEXT_WEIGHTS_MIRROR must be an http(s) URL such as http://host:port; got '{mirror}'.");
        var official = new Uri(checkpoint.Url);
        return new UriBuilder(official) { Scheme = m.Scheme, Host = m.Host, Port = m.Port }.Uri.AbsoluteUri;
    }

    /// <summary>The local file of the weights named <paramref name="tagOrVariant"/> (a tag, or a variant for its
    /// default weights), downloaded and verified first when the cache does not have them.</summary>
    public static string Fetch(string tagOrVariant, Action<DownloadProgress>? progress = null, Action<string>? warn = null, CancellationToken cancel = default) =>
        Fetch(PretrainedCatalog.Find(tagOrVariant), progress, warn, cancel);

    /// <inheritdoc cref="Fetch(string, Action{DownloadProgress}?, Action{string}?, CancellationToken)"/>
    public static string Fetch(PretrainedCheckpoint checkpoint, Action<DownloadProgress>? progress = null, Action<string>? warn = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        warn ??= w => Console.Error.WriteLine("warning: " + w);
        var final = CachePath(checkpoint);
        if (File.Exists(final)) return final;
        if (Environment.GetEnvironmentVariable("MLNETEXT_OFFLINE") is "1" or "true")
            throw new WeightsDownloadException($"MLNETEXT_OFFLINE is set and the {checkpoint.Tag} weights are not in the cache: place {checkpoint.FileName} " +
                $"(from {checkpoint.Url}) at '{final}', or unset MLNETEXT_OFFLINE.");
        Directory.CreateDirectory(CacheDirectory);
        using var fileLock = Lock(final + ".lock", checkpoint, warn, cancel);
        if (File.Exists(final)) return final;   // another process finished it while this one waited
        var part = final + ".part";
        var url = SourceUrl(checkpoint);
        for (int attempt = 1; ; attempt++)
        {
            try
            {
                Download(url, part, checkpoint, progress, cancel).GetAwaiter().GetResult();
                break;
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested) { throw; }
            catch (Exception e) when (Retryable(e) && attempt < Attempts)
            {
                var wait = RetryDelay * Math.Pow(2, attempt - 1);
                warn($"downloading {checkpoint.FileName} failed ({Message(e)}); retrying in {wait.TotalSeconds:0.#} s ({attempt}/{Attempts - 1}).");
                Thread.Sleep(wait);
            }
            catch (Exception e) when (Retryable(e))
            {
                throw new WeightsDownloadException($"Could not download the {checkpoint.Tag} weights from {url} after {attempt} attempt(s): {Message(e)}. " +
                    $"The part received is kept ('{part}') and the next attempt resumes it.", e);
            }
        }
        Verify(checkpoint, part, url, warn);
        File.Move(part, final);
        return final;
    }

    sealed class RetryableException(string message) : Exception(message);

    static bool Retryable(Exception e) =>
        e is RetryableException or HttpRequestException or IOException || (e is TaskCanceledException or OperationCanceledException && e is not WeightsDownloadException);

    static string Message(Exception e) => e is TaskCanceledException or OperationCanceledException ? "no data for " + ReadTimeout.TotalSeconds + " s" : e.Message;

    /// <summary>One transfer into <paramref name="part"/>, resuming what it already holds.</summary>
    static async Task Download(string url, string part, PretrainedCheckpoint checkpoint, Action<DownloadProgress>? progress, CancellationToken cancel)
    {
        long have = File.Exists(part) ? new FileInfo(part).Length : 0;
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
        HttpResponseMessage response;
        using (var headers = CancellationTokenSource.CreateLinkedTokenSource(cancel))
        {
            headers.CancelAfter(ReadTimeout);
            response = await s_http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, headers.Token).ConfigureAwait(false);
        }
        using (response)
        {
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                File.Delete(part); // the part is not a prefix of this file: start again
                throw new RetryableException($"{url} refused to resume at byte {have}");
            }
            if ((int)response.StatusCode >= 500 || response.StatusCode == HttpStatusCode.TooManyRequests)
                throw new RetryableException($"{url} answered {(int)response.StatusCode} {response.ReasonPhrase}");
            if (!response.IsSuccessStatusCode)
                throw new WeightsDownloadException($"{url} answered {(int)response.StatusCode} {response.ReasonPhrase} for the {checkpoint.Tag} weights " +
                    $"({checkpoint.FileName}). If the file moved, download it by hand and pass it with --weights, or place it at '{CachePath(checkpoint)}'.");
            bool resumed = response.StatusCode == HttpStatusCode.PartialContent;
            if (!resumed) have = 0;
            long? total = resumed ? response.Content.Headers.ContentRange?.Length : response.Content.Headers.ContentLength;
            if (total is null && checkpoint.Bytes is long published) total = published;
            await using var body = await response.Content.ReadAsStreamAsync(cancel).ConfigureAwait(false);
            await using var file = new FileStream(part, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
            var buffer = new byte[1 << 20];
            long received = have, reported = -1;
            while (true)
            {
                int n;
                using (var read = CancellationTokenSource.CreateLinkedTokenSource(cancel))
                {
                    read.CancelAfter(ReadTimeout);
                    n = await body.ReadAsync(buffer, read.Token).ConfigureAwait(false);
                }
                if (n == 0) break;
                await file.WriteAsync(buffer.AsMemory(0, n), cancel).ConfigureAwait(false);
                received += n;
                if (progress is not null && (received - reported >= 1 << 22 || received == total))
                {
                    reported = received;
                    progress(new DownloadProgress(checkpoint.FileName, received, total));
                }
            }
            await file.FlushAsync(cancel).ConfigureAwait(false);
            file.Flush(flushToDisk: true);
            if (total is long t && received != t)
                throw new RetryableException($"the transfer stopped at {received:N0} of {t:N0} bytes");
            progress?.Invoke(new DownloadProgress(checkpoint.FileName, received, total ?? received));
        }
    }

    /// <summary>Size and hash when published; otherwise (or in structure mode) a strict load into the variant. A file
    /// that fails is deleted, never cached.</summary>
    static void Verify(PretrainedCheckpoint checkpoint, string part, string url, Action<string> warn)
    {
        bool structureMode = string.Equals(Environment.GetEnvironmentVariable("MLNETEXT_WEIGHTS_CHECK"), "structure", StringComparison.OrdinalIgnoreCase);
        string? problem = null;
        long length = new FileInfo(part).Length;
        if (checkpoint.Bytes is long bytes && length != bytes) problem = $"it has {length:N0} bytes, the published file {bytes:N0}";
        else if (checkpoint.Sha256 is { } expected)
        {
            string actual;
            using (var f = File.OpenRead(part)) actual = Convert.ToHexStringLower(SHA256.HashData(f));
            if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase)) problem = $"its SHA-256 is {actual}, the published one {expected}";
        }
        if (problem is not null && !structureMode)
        {
            File.Delete(part);
            throw new WeightsDownloadException($"The file downloaded from {url} is not the official {checkpoint.Tag} checkpoint: {problem}. It was not cached. " +
                "(MLNETEXT_WEIGHTS_CHECK=structure accepts re-saved files that load as the variant.)");
        }
        if (problem is not null) warn($"{checkpoint.FileName} from {url}: {problem}; accepted by structure (MLNETEXT_WEIGHTS_CHECK=structure).");
        if (checkpoint.Sha256 is not null && problem is null) return;
        try
        {
            using var _ = Load(checkpoint, part).Model;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            File.Delete(part);
            throw new WeightsDownloadException($"The file downloaded from {url} does not load as {checkpoint.Variant} with {checkpoint.Classes} classes: {e.Message} It was not cached.", e);
        }
    }

    /// <summary>Loads the weights file of <paramref name="checkpoint"/> into its variant (the stored head kept, or
    /// re-initialised for <paramref name="numClasses"/>).</summary>
    public static (Backbone Model, LoadPretrainedResult Load) Load(PretrainedCheckpoint checkpoint, string path, int? numClasses = null) =>
        checkpoint.CustomBuild() is { } custom
            ? Backbones.Load(custom.Family, path, numClasses ?? checkpoint.Classes, custom.Kwargs)
            : Backbones.Load(checkpoint.Variant, path, numClasses ?? checkpoint.Classes);

    /// <summary>An exclusive lock file (advisory, released when disposed or when the process ends); waits while another
    /// process holds it.</summary>
    static FileStream Lock(string path, PretrainedCheckpoint checkpoint, Action<string> warn, CancellationToken cancel)
    {
        bool told = false;
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose); }
            catch (IOException) when (!cancel.IsCancellationRequested)
            {
                if (!told) warn($"another process is downloading {checkpoint.FileName}; waiting for it.");
                told = true;
                Thread.Sleep(200);
            }
        }
    }
}
