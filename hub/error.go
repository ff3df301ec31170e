package hub

import (
	"errors"
	"fmt"
)

// Error codes are Azure IoT Hub's error code names; clients branch on them
// the same way whether the hub is in-process or remote.
const (
	CodeArgumentInvalid     = "ArgumentInvalid"
	CodeGenericBadRequest   = "GenericBadRequest"
	CodeFormatError         = "IotHubFormatError"
	CodeUnauthorized        = "IotHubUnauthorizedAccess"
	CodeQuotaExceeded       = "IotHubQuotaExceeded"
	CodeDeviceNotFound      = "DeviceNotFound"
	CodeModuleNotFound      = "ModuleNotFound"
	CodeJobNotFound         = "JobNotFound"
	CodeDeviceNotOnline     = "DeviceNotOnline"
	CodeDeviceAlreadyExists = "DeviceAlreadyExists"
	CodeModuleAlreadyExists = "ModuleAlreadyExistsOnDevice"
	CodeJobAlreadyExists    = "JobAlreadyExists"
	CodePreconditionFailed  = "PreconditionFailed"
	CodeMessageTooLarge     = "MessageTooLarge"
	CodeThrottling          = "ThrottlingException"
	CodeTooManyJobs         = "ThrottlingMaxActiveJobCountExceeded"
	CodeServerError         = "ServerError"
	CodeServiceUnavailable  = "ServiceUnavailable"
	CodeGatewayTimeout      = "GatewayTimeout"
	// CodeBadDeviceResponse: the device answered a method with a payload
	// that is not JSON (HTTP 502, which Azure's SDKs call
	// BadDeviceResponse).
	CodeBadDeviceResponse = "BadDeviceResponse"
	// CodeUnreachable is not Azure's: the REST client reports with it that
	// the hub could not be reached at all (connection refused, TLS failure).
	CodeUnreachable = "HubUnreachable"
	// CodeCertificateNotFound answers a CA certificate name the hub does
	// not hold. Azure serves its certificates API through Azure Resource
	// Manager, whose code this is; the number is ours.
	CodeCertificateNotFound = "CertificateNotFound"
)

// codeInfo is the numeric Azure code and the HTTP status of each code name.
var codeInfo = map[string]struct{ Number, HTTP int }{
	CodeArgumentInvalid:     {400004, 400},
	CodeGenericBadRequest:   {400001, 400},
	CodeFormatError:         {400006, 400},
	CodeUnauthorized:        {401002, 401},
	CodeQuotaExceeded:       {403002, 403},
	CodeDeviceNotFound:      {404001, 404},
	CodeModuleNotFound:      {404010, 404},
	CodeJobNotFound:         {404002, 404},
	CodeDeviceNotOnline:     {404103, 404},
	CodeDeviceAlreadyExists: {409001, 409},
	CodeModuleAlreadyExists: {409301, 409},
	CodeJobAlreadyExists:    {409002, 409},
	CodePreconditionFailed:  {412001, 412},
	CodeMessageTooLarge:     {413001, 413},
	CodeThrottling:          {429001, 429},
	CodeTooManyJobs:         {429003, 429},
	CodeServerError:         {500001, 500},
	CodeServiceUnavailable:  {503001, 503},
	CodeGatewayTimeout:      {504101, 504},
	CodeBadDeviceResponse:   {502001, 502},
	CodeUnreachable:         {503000, 503},
	CodeCertificateNotFound: {404000, 404},
}

// Error is the one application error of the hub: an Azure error code name
// and a message meant for a person.
type Error struct {
	Code    string
	Message string
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

// Is makes errors.Is(err, ErrNotFound) and friends match any *Error with
// the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == ""
}

// Sentinels for the conditions callers branch on; compare with errors.Is.
var (
	ErrDeviceNotFound     = &Error{Code: CodeDeviceNotFound}
	ErrModuleNotFound     = &Error{Code: CodeModuleNotFound}
	ErrJobNotFound        = &Error{Code: CodeJobNotFound}
	ErrPreconditionFailed = &Error{Code: CodePreconditionFailed}
	ErrDeviceNotOnline    = &Error{Code: CodeDeviceNotOnline}
	ErrGatewayTimeout     = &Error{Code: CodeGatewayTimeout}
)

// ErrorCode returns the Azure code of err, or CodeServerError for errors
// that are not an *Error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeServerError
}

// ErrorMessage returns the message of an *Error in err, or err.Error().
func ErrorMessage(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return err.Error()
}

// CodeNumber returns Azure's six-digit numeric code for a code name
// (500001 for unknown names).
func CodeNumber(code string) int {
	if c, ok := codeInfo[code]; ok {
		return c.Number
	}
	return 500001
}

// CodeFromNumber returns the code name for one of Azure's numeric codes.
func CodeFromNumber(n int) (string, bool) {
	for name, c := range codeInfo {
		if c.Number == n {
			return name, true
		}
	}
	return "", false
}

// HTTPStatus returns the HTTP status Azure answers with for a code name.
func HTTPStatus(code string) int {
	if c, ok := codeInfo[code]; ok {
		return c.HTTP
	}
	return 500
}

// IsInfrastructure reports whether err means the hub could not be used at
// all (unreachable, refused credentials, internal failure), as opposed to
// an answer about the request itself.
func IsInfrastructure(err error) bool {
	switch ErrorCode(err) {
	case CodeUnreachable, CodeUnauthorized, CodeServerError, CodeServiceUnavailable:
		return true
	}
	return false
}
