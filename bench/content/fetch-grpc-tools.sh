#!/usr/bin/env bash
# Fetches several Grpc.Tools versions with the ordinary NuGet client (a throw-away project restored with
# PackageDownload items) and unpacks each package's contents into $WORK/trees/<version>, without the .nupkg
# archive itself and NuGet's bookkeeping files. Usage: fetch-grpc-tools.sh WORK VERSION...
set -euo pipefail
work=$1; shift
[ $# -ge 1 ] || { echo "usage: $0 WORK VERSION..." >&2; exit 2; }
proj="$work/fetch"
mkdir -p "$proj" "$work/trees"
versions=$(printf '[%s];' "$@"); versions=${versions%;}
# Empty props files stop the repository's central package management from applying to this project.
echo '<Project/>' > "$proj/Directory.Build.props"
echo '<Project/>' > "$proj/Directory.Packages.props"
cat > "$proj/fetch.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
  <ItemGroup><PackageDownload Include="Grpc.Tools" Version="$versions" /></ItemGroup>
</Project>
XML
dotnet restore "$proj/fetch.csproj" --packages "$work/packages" >/dev/null
for v in "$@"; do
  rm -rf "$work/trees/$v"
  cp -a "$work/packages/grpc.tools/$v" "$work/trees/$v"
  rm -f "$work/trees/$v"/*.nupkg "$work/trees/$v"/*.sha512 "$work/trees/$v/.nupkg.metadata" "$work/trees/$v/.signature.p7s"
done
du -sb "$work"/trees/*
