"""MMS PDU decoding (ISO 9506 BER): PDU and service names, invoke id, ObjectNames, and
the TASE.2 (IEC 60870-6-503) well-known object names among them; bodies via asn1tools.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from inspection.iccp.ber import CONTEXT, UNIVERSAL, BerError, Tlv, children, find, integer, read_tlv

PDU_NAMES = {0: "confirmed-RequestPDU", 1: "confirmed-ResponsePDU", 2: "confirmed-ErrorPDU",
             3: "unconfirmed-PDU", 4: "reject-PDU", 5: "cancel-RequestPDU",
             6: "cancel-ResponsePDU", 7: "cancel-ErrorPDU", 8: "initiate-RequestPDU",
             9: "initiate-ResponsePDU", 10: "initiate-ErrorPDU", 11: "conclude-RequestPDU",
             12: "conclude-ResponsePDU", 13: "conclude-ErrorPDU"}
CONFIRMED_SERVICES = ["status", "getNameList", "identify", "rename", "read", "write", "getVariableAccessAttributes", "defineNamedVariable", "defineScatteredAccess", "getScatteredAccessAttributes", "deleteVariableAccess", "defineNamedVariableList", "getNamedVariableListAttributes", "deleteNamedVariableList", "defineNamedType", "getNamedTypeAttributes", "deleteNamedType", "input", "output", "takeControl", "relinquishControl", "defineSemaphore", "deleteSemaphore", "reportSemaphoreStatus", "reportPoolSemaphoreStatus", "reportSemaphoreEntryStatus", "initiateDownloadSequence", "downloadSegment", "terminateDownloadSequence", "initiateUploadSequence", "uploadSegment", "terminateUploadSequence", "requestDomainDownload", "requestDomainUpload", "loadDomainContent", "storeDomainContent", "deleteDomain", "getDomainAttributes", "createProgramInvocation", "deleteProgramInvocation", "start", "stop", "resume", "reset", "kill", "getProgramInvocationAttributes", "obtainFile", "defineEventCondition", "deleteEventCondition", "getEventConditionAttributes", "reportEventConditionStatus", "alterEventConditionMonitoring", "triggerEvent", "defineEventAction", "deleteEventAction", "getEventActionAttributes", "reportEventActionStatus", "defineEventEnrollment", "deleteEventEnrollment", "alterEventEnrollment", "reportEventEnrollmentStatus", "getEventEnrollmentAttributes", "acknowledgeEventNotification", "getAlarmSummary", "getAlarmEnrollmentSummary", "readJournal", "writeJournal", "initializeJournal", "reportJournalStatus", "createJournal", "deleteJournal", "getCapabilityList", "fileOpen", "fileRead", "fileClose", "fileRename", "fileDelete", "fileDirectory"]
UNCONFIRMED_SERVICES = ("informationReport", "unsolicitedStatus", "eventNotification")
REQUEST_BODIES = {1, 4, 5, 6, 11, 12, 13}   # decoded by asn1tools (mms_asn subset)
RESPONSE_BODIES = {1, 4, 5, 12}

# TASE.2 well-known names (IEC 60870-6-503 / -802 object models)
TASE2_NAMES = frozenset((
    "Bilateral_Table_ID", "TASE2_Version", "Supported_Features", "Transfer_Set_Name",
    "Transfer_Set_Time_Stamp", "DSConditions_Detected", "Event_Code_Detected",
    "Next_DSTransfer_Set", "Next_IMTransfer_Set", "Transfer_Report_ACK",
    "Transfer_Report_NACK", "IM_Transfer_Set", "IM_Transfer_Set_Status",
    "Information_Buffer_Name", "Information_Buffer_Size", "Next_Buffer_Entry",
    "Buffer_Entry_Count", "Information_Message_Header", "Special_Transfer_Set",
))
TASE2_PREFIXES = ("DSTransferSet", "DS_Transfer_Set", "Transfer_Set", "IM_Transfer_Set",
                  "Information_Buffer", "Information_Message")


@dataclass(frozen=True, slots=True)
class MmsInfo:
    pdu: str
    service: str | None
    invoke_id: int | None
    domain: str | None
    items: tuple[str, ...]
    tase2: tuple[str, ...]


@functools.cache
def spec() -> Any:
    import asn1tools

    from inspection.iccp.mms_asn import MMS_ASN1
    return asn1tools.compile_string(MMS_ASN1, "ber")


def _bodies(buf: bytes, type_name: str) -> Any:
    try:
        return spec().decode(type_name, buf)
    except Exception as e:  # asn1tools raises DecodeError and, on odd input, others
        raise BerError(f"bad MMS BER in {type_name}: {str(e)[:80]}") from e


def _walk(value: Any, domains: list[str], items: list[str]) -> None:
    """Collect ObjectNames (and name-list identifiers) from asn1tools' decoded value."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        tag, inner = value
        if tag == "domain-specific" and isinstance(inner, dict):
            domains.append(str(inner.get("domainId", "")))
            items.append(str(inner.get("itemId", "")))
            return
        if tag in ("vmd-specific", "aa-specific") and isinstance(inner, str):
            items.append(inner)
            return
        if tag == "domainSpecific" and isinstance(inner, str):
            domains.append(inner)
            return
        if tag in ("listOfData", "listOfAccessResult"):
            return
        _walk(inner, domains, items)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k in ("listOfData", "listOfAccessResult"):
                continue  # data values, not names
            if k == "listOfIdentifier" and isinstance(v, list):
                items.extend(str(x) for x in v)
            elif k == "domainName" and isinstance(v, str):
                domains.append(v)
            else:
                _walk(v, domains, items)
    elif isinstance(value, list):
        for v in value:
            _walk(v, domains, items)


def tase2_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The well-known TASE.2 objects among ``names`` (exact or by prefix), in order."""
    return tuple(n for n in names if n in TASE2_NAMES or n.startswith(TASE2_PREFIXES))


def _service(buf: bytes, svc: Tlv, names: list[str], bodies: set[int],
             type_name: str) -> tuple[str, Any]:
    if svc.cls != CONTEXT:
        raise BerError("MMS service is not context-tagged")
    n = svc.number
    name = names[n] if n < len(names) else f"service[{n}]"
    decoded = _bodies(buf[svc.start:svc.end], type_name) if n in bodies else None
    return name, decoded


def decode_mms(buf: bytes) -> MmsInfo:
    """Decode one MMS PDU; raises BerError on malformed BER (the caller counts it)."""
    top = read_tlv(buf, 0)
    if top.end != len(buf):
        raise BerError(f"{len(buf) - top.end} trailing bytes after the MMS PDU")
    if top.cls != CONTEXT or top.number not in PDU_NAMES:
        raise BerError(f"not an MMS PDU (tag 0x{buf[0]:02x})")
    pdu = PDU_NAMES[top.number]
    service: str | None = None
    invoke_id: int | None = None
    decoded: Any = None
    n = top.number
    if n in (0, 1):
        kids = children(buf, top)
        if len(kids) < 2 or kids[0].cls != UNIVERSAL or kids[0].number != 2:
            raise BerError(f"{pdu} without invokeID and service")
        invoke_id = integer(buf, kids[0])
        svc = kids[1]
        if n == 0 and svc.cls == UNIVERSAL and svc.number == 16:  # listOfModifier
            if len(kids) < 3:
                raise BerError(f"{pdu} without a service")
            svc = kids[2]
        if n == 0:
            service, decoded = _service(buf, svc, CONFIRMED_SERVICES, REQUEST_BODIES,
                                        "ConfirmedServiceRequest")
        else:
            service, decoded = _service(buf, svc, CONFIRMED_SERVICES, RESPONSE_BODIES,
                                        "ConfirmedServiceResponse")
    elif n == 3:
        kids = children(buf, top)
        if not kids:
            raise BerError("unconfirmed-PDU without a service")
        service, decoded = _service(buf, kids[0], list(UNCONFIRMED_SERVICES), {0},
                                    "UnconfirmedService")
    elif n in (2, 4):
        kid = find(children(buf, top), CONTEXT, 0)
        invoke_id = integer(buf, kid) if kid is not None else None
    elif n in (5, 6):
        invoke_id = integer(buf, top)
    elif n in (8, 9):
        service = "initiate"
        _bodies(buf, "Initiate-RequestPDU" if n == 8 else "Initiate-ResponsePDU")
    elif n == 10:
        service = "initiate"
    elif n in (11, 12, 13):
        service = "conclude"
    domains: list[str] = []
    items: list[str] = []
    if decoded is not None:
        _walk(decoded, domains, items)
    names = tuple(items)
    return MmsInfo(pdu, service, invoke_id, domains[0] if domains else None, names,
                   tase2_names(names))
