namespace Orchestrator.Messages.Devices;

/// <summary>
/// Where a device stands in the repair/upgrade cycle. Names are persisted (inside snapshots) and shown to
/// operators: rename only together with a new snapshot manifest version.
/// </summary>
public enum DeviceStatus
{
    /// <summary>The device has never checked in.</summary>
    Unknown,
    /// <summary>Installed tree matches what the server expects; nothing to do.</summary>
    Idle,
    /// <summary>A target version differs from the installed one; the device has not started downloading yet.</summary>
    UpgradeAssigned,
    /// <summary>The device is downloading the target version (see progress).</summary>
    Downloading,
    /// <summary>The device is verifying the downloaded files.</summary>
    Verifying,
    /// <summary>The device is switching to the new version.</summary>
    Installing,
    /// <summary>The last upgrade or repair finished and was reported installed.</summary>
    Completed,
    /// <summary>Same version, but the device's files differ from the manifest; the device was told which files to restore.</summary>
    RepairNeeded,
    /// <summary>The device is restoring the differing files.</summary>
    Repairing,
    /// <summary>The last attempt failed; the device retries after the advised delay, forever unless cancelled.</summary>
    Failed,
    /// <summary>The device went silent; it resumes its previous status when it is heard from again.</summary>
    Offline,
}

/// <summary>What kind of work a device has been told to do.</summary>
public enum WorkKind
{
    /// <summary>Switch to another version.</summary>
    Upgrade,
    /// <summary>Restore the listed files of the installed version.</summary>
    Repair,
}

/// <summary>The phase of an update session a report refers to.</summary>
public enum WorkPhase
{
    /// <summary>Fetching chunks.</summary>
    Download,
    /// <summary>Checking file hashes of the staged tree.</summary>
    Verify,
    /// <summary>Switching the installed tree.</summary>
    Install,
}
