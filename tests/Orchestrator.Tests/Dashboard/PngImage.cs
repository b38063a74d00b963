using System.Buffers.Binary;
using System.IO.Compression;

namespace Orchestrator.Node.Tests.Dashboard;

/// <summary>
/// Minimal PNG decoder for screenshot checks (8-bit greyscale, RGB or RGBA, not interlaced: what Chromium writes).
/// Verifies the signature and every chunk's CRC, so a truncated or corrupt file fails to decode.
/// </summary>
public sealed class PngImage
{
    public int Width { get; }
    public int Height { get; }
    /// <summary>RGB triples, row-major.</summary>
    public byte[] Rgb { get; }

    private PngImage(int width, int height, byte[] rgb) { Width = width; Height = height; Rgb = rgb; }

    public static PngImage Decode(byte[] file)
    {
        ReadOnlySpan<byte> signature = [137, 80, 78, 71, 13, 10, 26, 10];
        if (file.Length < 8 || !file.AsSpan(0, 8).SequenceEqual(signature)) throw new InvalidDataException("not a PNG (bad signature)");
        int width = 0, height = 0, colorType = -1;
        using var idat = new MemoryStream();
        var pos = 8;
        var ended = false;
        while (pos + 12 <= file.Length && !ended)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos));
            var type = System.Text.Encoding.ASCII.GetString(file, pos + 4, 4);
            if (pos + 12 + length > file.Length) throw new InvalidDataException($"PNG chunk {type} is truncated");
            var data = file.AsSpan(pos + 8, length);
            var crc = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos + 8 + length));
            if (PngCrc32.Compute(file.AsSpan(pos + 4, length + 4)) != crc) throw new InvalidDataException($"PNG chunk {type} has a bad CRC");
            switch (type)
            {
                case "IHDR":
                    width = (int)BinaryPrimitives.ReadUInt32BigEndian(data);
                    height = (int)BinaryPrimitives.ReadUInt32BigEndian(data[4..]);
                    if (data[8] != 8) throw new InvalidDataException($"PNG bit depth {data[8]} not supported");
                    colorType = data[9];
                    if (data[12] != 0) throw new InvalidDataException("interlaced PNG not supported");
                    break;
                case "IDAT": idat.Write(data); break;
                case "IEND": ended = true; break;
            }
            pos += 12 + length;
        }
        if (!ended) throw new InvalidDataException("PNG has no IEND chunk");
        var channels = colorType switch { 0 => 1, 2 => 3, 6 => 4, 4 => 2, _ => throw new InvalidDataException($"PNG colour type {colorType} not supported") };
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        var stride = width * channels;
        var raw = new byte[(stride + 1) * height];
        z.ReadExactly(raw);
        var prev = new byte[stride];
        var cur = new byte[stride];
        var rgb = new byte[width * height * 3];
        for (var y = 0; y < height; y++)
        {
            var filter = raw[y * (stride + 1)];
            Array.Copy(raw, y * (stride + 1) + 1, cur, 0, stride);
            for (var i = 0; i < stride; i++)
            {
                int a = i >= channels ? cur[i - channels] : 0, b = prev[i], c = i >= channels ? prev[i - channels] : 0;
                cur[i] = (byte)(cur[i] + filter switch
                {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => (a + b) / 2,
                    4 => Paeth(a, b, c),
                    _ => throw new InvalidDataException($"PNG filter {filter} unknown"),
                });
            }
            for (var x = 0; x < width; x++)
            {
                var o = (y * width + x) * 3;
                if (channels < 3) { rgb[o] = rgb[o + 1] = rgb[o + 2] = cur[x * channels]; }
                else { rgb[o] = cur[x * channels]; rgb[o + 1] = cur[x * channels + 1]; rgb[o + 2] = cur[x * channels + 2]; }
            }
            (prev, cur) = (cur, prev);
        }
        return new PngImage(width, height, rgb);
    }

    private static int Paeth(int a, int b, int c)
    {
        var p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>Variance of the luminance over all pixels (0 for a blank image).</summary>
    public double LuminanceVariance()
    {
        double sum = 0, sumSq = 0;
        var n = Width * Height;
        for (var i = 0; i < n; i++)
        {
            var l = 0.299 * Rgb[i * 3] + 0.587 * Rgb[i * 3 + 1] + 0.114 * Rgb[i * 3 + 2];
            sum += l;
            sumSq += l * l;
        }
        var mean = sum / n;
        return sumSq / n - mean * mean;
    }

    /// <summary>Pixels within <paramref name="tolerance"/> of the colour.</summary>
    public int CountColor(byte r, byte g, byte b, int tolerance = 6)
    {
        var count = 0;
        for (var i = 0; i < Rgb.Length; i += 3)
            if (Math.Abs(Rgb[i] - r) <= tolerance && Math.Abs(Rgb[i + 1] - g) <= tolerance && Math.Abs(Rgb[i + 2] - b) <= tolerance) count++;
        return count;
    }

    public int DistinctColors() => Enumerable.Range(0, Width * Height).Select(i => (Rgb[i * 3] << 16) | (Rgb[i * 3 + 1] << 8) | Rgb[i * 3 + 2]).Distinct().Count();
}
