using System.Collections;
using System.Reflection;

namespace Orchestrator.Messages.Tests.Serialization;

/// <summary>Structural comparison of records including their list properties (record Equals compares lists by reference).</summary>
public static class DeepEquality
{
    /// <summary>Throws naming the first differing member path.</summary>
    public static void AssertEqual(object? expected, object? actual, string path = "$")
    {
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{path}: expected {expected ?? "null"}, got {actual ?? "null"}");
            return;
        }
        var type = expected.GetType();
        // Lists come back as List<T> where the sample used an array; the contract is IReadOnlyList<T>, so only contents count.
        if (expected is not IEnumerable || expected is string)
            Assert.True(type == actual.GetType(), $"{path}: type {type} vs {actual.GetType()}");
        if (type.IsPrimitive || type.IsEnum || expected is string or decimal or DateTimeOffset or DateTime or TimeSpan)
        {
            Assert.True(expected.Equals(actual), $"{path}: expected {expected}, got {actual}");
            return;
        }
        if (expected is IEnumerable e1 && actual is IEnumerable e2)
        {
            var l1 = e1.Cast<object?>().ToList();
            var l2 = e2.Cast<object?>().ToList();
            Assert.True(l1.Count == l2.Count, $"{path}: count {l1.Count} vs {l2.Count}");
            for (var i = 0; i < l1.Count; i++) AssertEqual(l1[i], l2[i], $"{path}[{i}]");
            return;
        }
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0))
        {
            if (p.Name == "EqualityContract") continue;
            AssertEqual(p.GetValue(expected), p.GetValue(actual), $"{path}.{p.Name}");
        }
    }

    /// <summary>Fails when any public property (recursively) still holds its type's default value.</summary>
    public static void AssertNoDefaults(object value, string path = "$")
    {
        foreach (var p in value.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.GetIndexParameters().Length == 0))
        {
            if (p.Name == "EqualityContract" || p.DeclaringType != value.GetType() && p.DeclaringType!.IsInterface) continue;
            var v = p.GetValue(value);
            var where = $"{path}.{p.Name}";
            Assert.True(v is not null, $"{where} is null in the sample; fill it so the round trip covers it");
            var t = v!.GetType();
            if (t.IsValueType && !t.IsEnum)
                Assert.False(v.Equals(Activator.CreateInstance(t)), $"{where} holds its default value in the sample");
            if (v is IEnumerable items and not string)
            {
                var list = items.Cast<object?>().ToList();
                Assert.True(list.Count > 0, $"{where} is empty in the sample");
                foreach (var item in list.Where(i => i is not null && !i.GetType().IsPrimitive && i is not string))
                    AssertNoDefaults(item!, where + "[]");
            }
            else if (!t.IsPrimitive && !t.IsEnum && v is not string and not DateTimeOffset and not decimal)
                AssertNoDefaults(v, where);
        }
    }
}
