"""The subset of the MMS ASN.1 module (ISO 9506-2) the ICCP decoder compiles with
asn1tools for BER: initiate, the named-variable services and their ObjectNames.

Services outside this subset are still named (by their CHOICE tag, see ``mms.py``) but
their bodies are not decoded.  Written from ISO 9506-2 (and the IEC 61850-8-1 usage).
"""

MMS_ASN1 = r"""
ISO-9506-MMS-1-Subset DEFINITIONS ::= BEGIN

Initiate-RequestPDU ::= [8] IMPLICIT SEQUENCE {
    localDetailCalling                  [0] IMPLICIT INTEGER OPTIONAL,
    proposedMaxServOutstandingCalling   [1] IMPLICIT INTEGER,
    proposedMaxServOutstandingCalled    [2] IMPLICIT INTEGER,
    proposedDataStructureNestingLevel   [3] IMPLICIT INTEGER OPTIONAL,
    mmsInitRequestDetail                [4] IMPLICIT SEQUENCE {
        proposedVersionNumber           [0] IMPLICIT INTEGER,
        proposedParameterCBB            [1] IMPLICIT BIT STRING,
        servicesSupportedCalling        [2] IMPLICIT BIT STRING,
        ...
    },
    ...
}

Initiate-ResponsePDU ::= [9] IMPLICIT SEQUENCE {
    localDetailCalled                   [0] IMPLICIT INTEGER OPTIONAL,
    negotiatedMaxServOutstandingCalling [1] IMPLICIT INTEGER,
    negotiatedMaxServOutstandingCalled  [2] IMPLICIT INTEGER,
    negotiatedDataStructureNestingLevel [3] IMPLICIT INTEGER OPTIONAL,
    mmsInitResponseDetail               [4] IMPLICIT SEQUENCE {
        negotiatedVersionNumber         [0] IMPLICIT INTEGER,
        negotiatedParameterCBB          [1] IMPLICIT BIT STRING,
        servicesSupportedCalled         [2] IMPLICIT BIT STRING,
        ...
    },
    ...
}

Identifier ::= VisibleString

ObjectName ::= CHOICE {
    vmd-specific    [0] IMPLICIT Identifier,
    domain-specific [1] IMPLICIT SEQUENCE { domainId Identifier, itemId Identifier },
    aa-specific     [2] IMPLICIT Identifier
}

Address ::= CHOICE {
    numericAddress       [0] IMPLICIT INTEGER,
    symbolicAddress      [1] IMPLICIT VisibleString,
    unconstrainedAddress [2] IMPLICIT OCTET STRING
}

AlternateAccess ::= SEQUENCE OF CHOICE {
    unnamed AlternateAccessSelection,
    named   [5] IMPLICIT SEQUENCE {
        componentName [0] IMPLICIT Identifier,
        access        AlternateAccessSelection
    }
}

AlternateAccessSelection ::= CHOICE {
    selectAlternateAccess [0] IMPLICIT SEQUENCE {
        accessSelection CHOICE {
            component   [0] IMPLICIT Identifier,
            index       [1] IMPLICIT INTEGER,
            indexRange  [2] IMPLICIT IndexRange,
            allElements [3] IMPLICIT NULL
        },
        alternateAccess AlternateAccess
    },
    component   [1] IMPLICIT Identifier,
    index       [2] IMPLICIT INTEGER,
    indexRange  [3] IMPLICIT IndexRange,
    allElements [4] IMPLICIT NULL
}

IndexRange ::= SEQUENCE {
    lowIndex         [0] IMPLICIT INTEGER,
    numberOfElements [1] IMPLICIT INTEGER
}

VariableSpecification ::= CHOICE {
    name        [0] ObjectName,
    address     [1] Address,
    invalidated [4] IMPLICIT NULL
}

VariableItem ::= SEQUENCE {
    variableSpecification VariableSpecification,
    alternateAccess       [5] IMPLICIT AlternateAccess OPTIONAL
}

VariableAccessSpecification ::= CHOICE {
    listOfVariable   [0] IMPLICIT SEQUENCE OF VariableItem,
    variableListName [1] ObjectName
}

Data ::= CHOICE {
    array            [1] IMPLICIT SEQUENCE OF Data,
    structure        [2] IMPLICIT SEQUENCE OF Data,
    boolean          [3] IMPLICIT BOOLEAN,
    bit-string       [4] IMPLICIT BIT STRING,
    integer          [5] IMPLICIT INTEGER,
    unsigned         [6] IMPLICIT INTEGER,
    floating-point   [7] IMPLICIT OCTET STRING,
    octet-string     [9] IMPLICIT OCTET STRING,
    visible-string   [10] IMPLICIT VisibleString,
    generalized-time [11] IMPLICIT GeneralizedTime,
    binary-time      [12] IMPLICIT OCTET STRING,
    bcd              [13] IMPLICIT INTEGER,
    booleanArray     [14] IMPLICIT BIT STRING,
    objId            [15] IMPLICIT OBJECT IDENTIFIER,
    mMSString        [16] IMPLICIT UTF8String,
    utc-time         [17] IMPLICIT OCTET STRING
}

AccessResult ::= CHOICE {
    failure [0] IMPLICIT INTEGER,
    success Data
}

Read-Request ::= SEQUENCE {
    specificationWithResult     [0] IMPLICIT BOOLEAN DEFAULT FALSE,
    variableAccessSpecification [1] VariableAccessSpecification
}

Read-Response ::= SEQUENCE {
    variableAccessSpecification [0] VariableAccessSpecification OPTIONAL,
    listOfAccessResult          [1] IMPLICIT SEQUENCE OF AccessResult
}

Write-Request ::= SEQUENCE {
    variableAccessSpecification VariableAccessSpecification,
    listOfData                  [0] IMPLICIT SEQUENCE OF Data
}

Write-Response ::= SEQUENCE OF CHOICE {
    failure [0] IMPLICIT INTEGER,
    success [1] IMPLICIT NULL
}

GetNameList-Request ::= SEQUENCE {
    objectClass [0] CHOICE {
        basicObjectClass [0] IMPLICIT INTEGER,
        csObjectClass    [1] IMPLICIT INTEGER
    },
    objectScope [1] CHOICE {
        vmdSpecific    [0] IMPLICIT NULL,
        domainSpecific [1] IMPLICIT Identifier,
        aaSpecific     [2] IMPLICIT NULL
    },
    continueAfter [2] IMPLICIT Identifier OPTIONAL
}

GetNameList-Response ::= SEQUENCE {
    listOfIdentifier [0] IMPLICIT SEQUENCE OF Identifier,
    moreFollows      [1] IMPLICIT BOOLEAN DEFAULT TRUE
}

GetVariableAccessAttributes-Request ::= CHOICE {
    name    [0] ObjectName,
    address [1] Address
}

DefineNamedVariableList-Request ::= SEQUENCE {
    variableListName ObjectName,
    listOfVariable   [0] IMPLICIT SEQUENCE OF VariableItem
}

GetNamedVariableListAttributes-Response ::= SEQUENCE {
    mmsDeletable   [0] IMPLICIT BOOLEAN,
    listOfVariable [1] IMPLICIT SEQUENCE OF VariableItem,
    ...
}

DeleteNamedVariableList-Request ::= SEQUENCE {
    scopeOfDelete          [0] IMPLICIT INTEGER DEFAULT 0,
    listOfVariableListName [1] IMPLICIT SEQUENCE OF ObjectName OPTIONAL,
    domainName             [2] IMPLICIT Identifier OPTIONAL,
    ...
}

InformationReport ::= SEQUENCE {
    variableAccessSpecification VariableAccessSpecification,
    listOfAccessResult          [0] IMPLICIT SEQUENCE OF AccessResult
}

ConfirmedServiceRequest ::= CHOICE {
    getNameList                    [1] IMPLICIT GetNameList-Request,
    read                           [4] IMPLICIT Read-Request,
    write                          [5] IMPLICIT Write-Request,
    getVariableAccessAttributes    [6] GetVariableAccessAttributes-Request,
    defineNamedVariableList        [11] IMPLICIT DefineNamedVariableList-Request,
    getNamedVariableListAttributes [12] ObjectName,
    deleteNamedVariableList        [13] IMPLICIT DeleteNamedVariableList-Request
}

ConfirmedServiceResponse ::= CHOICE {
    getNameList                    [1] IMPLICIT GetNameList-Response,
    read                           [4] IMPLICIT Read-Response,
    write                          [5] IMPLICIT Write-Response,
    getNamedVariableListAttributes [12] IMPLICIT GetNamedVariableListAttributes-Response
}

UnconfirmedService ::= CHOICE {
    informationReport [0] IMPLICIT InformationReport
}

END
"""
