#!/usr/bin/env bash
# Fetches several versions of one NuGet package with the ordinary NuGet client (a throw-away project restored with
# PackageDownload items) and unpacks each package's contents into $WORK/trees/<version>, without the .nupkg
# archive itself and NuGet's bookkeeping files. Usage: fetch-nuget.sh PACKAGE WORK VERSION...
set -euo pipefail
package=$1; work=$2; shift 2
[ $# -ge 1 ] || { echo "usage: $0 PACKAGE WORK VERSION..." >&2; exit 2; }
proj="$work/fetch"
mkdir -p "$proj" "$work/trees"
versions=$(printf '[%s];' "$@"); versions=${versions%;}
# Empty props files stop the repository's central package management from applying to this project.
echo '<Project/>' > "$proj/Directory.Build.props"
echo '<Project/>' > "$proj/Directory.Packages.props"
cat > "$proj/fetch.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="$package" Version="$versions" /></ItemGroup>
</Project>
XML
dotnet restore "$proj/fetch.csproj" --packages "$work/packages" >/dev/null
lower=$(echo "$package" | tr '[:upper:]' '[:lower:]')
for v in "$@"; do
  rm -rf "$work/trees/$v"
  cp -a "$work/packages/$lower/$v" "$work/trees/$v"
  rm -f "$work/trees/$v"/*.nupkg "$work/trees/$v"/*.sha512 "$work/trees/$v/.nupkg.metadata" "$work/trees/$v/.signature.p7s"
done
du -sb "$work"/trees/*
