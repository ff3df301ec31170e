// iotjobs hub ca: the CA certificates that certificateAuthority devices
// chain to (the hub's certificates API, Azure's shape).

package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
)

func caCmd() *cli.Command {
	flags := []cli.Flag{hubFlag(), caFlag(), dataFlag(), jsonFlag()}
	return &cli.Command{
		Name:  "ca",
		Usage: "register, list or remove the CA certificates X.509 devices chain to",
		Description: "Devices of authentication type certificateAuthority connect with a client certificate whose\n" +
			"subject CN is their device id and that chains to a CA registered here. Azure asks for proof of\n" +
			"possession of the CA's key before it trusts it; this hub verifies a CA on upload instead\n" +
			"(Azure's \"verify on upload\"): register only CAs you control.",
		Subcommands: []*cli.Command{
			{Name: "add", ArgsUsage: "FILE", Usage: "register the CA certificate in PEM file FILE, verified",
				Description: "Example:\n   iotjobs hub ca add root-ca.pem --name plant-a",
				Flags:       append(flags, &cli.StringFlag{Name: "name", Usage: "the certificate's name on the hub (default: the file name without extension)"}),
				Action:      adminAction(parseCAAdd, runCAAdd)},
			{Name: "list", Usage: "list the registered CA certificates",
				Description: "Examples:\n   iotjobs hub ca list\n   iotjobs hub ca list -o json",
				Flags:       listFlags(), Action: listAction(noArgs, runCAList)},
			{Name: "remove", ArgsUsage: "NAME", Usage: "remove a CA certificate: devices chaining to it can no longer connect",
				Description: "Example:\n   iotjobs hub ca remove plant-a",
				Flags:       flags, Action: adminAction(func(c *cli.Context) (string, error) { return oneArg(c, "certificate name") },
					func(c *cli.Context, h hub.Client, name string) error {
						cs, err := certificates(h)
						if err != nil {
							return err
						}
						if err := cs.DeleteCertificate(c.Context, name, "*"); err != nil {
							return err
						}
						fmt.Fprintf(c.App.ErrWriter, "removed CA certificate %s\n", name)
						return nil
					})},
		},
	}
}

// caAddArgs are hub ca add's arguments: the name and the PEM text.
type caAddArgs struct{ name, pem string }

// parseCAAdd reads the file and checks that it holds one CA certificate
// before any hub is contacted (the hub checks again).
func parseCAAdd(c *cli.Context) (caAddArgs, error) {
	file, err := oneArg(c, "PEM file")
	if err != nil {
		return caAddArgs{}, err
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return caAddArgs{}, usagef("hub ca add: %s: no such file", file)
	}
	if err != nil {
		return caAddArgs{}, usagef("hub ca add: %w", err)
	}
	block, _ := pem.Decode(b)
	switch {
	case block == nil:
		return caAddArgs{}, usagef("hub ca add: %s is not PEM: expected -----BEGIN CERTIFICATE-----", file)
	case block.Type != "CERTIFICATE":
		return caAddArgs{}, usagef("hub ca add: %s holds a %s, not a CERTIFICATE: give the CA's certificate, not its key", file, block.Type)
	}
	x, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return caAddArgs{}, usagef("hub ca add: %s: the certificate cannot be parsed: %w", file, err)
	}
	if !x.BasicConstraintsValid || !x.IsCA {
		return caAddArgs{}, usagef("hub ca add: %s (%s) is not a CA certificate: register the CA that signs the device certificates, not a device's", file, x.Subject.CommonName)
	}
	name := c.String("name")
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	if err := hub.CheckCertificateName(name); err != nil {
		return caAddArgs{}, usagef("hub ca add: %s (use --name)", hub.ErrorMessage(err))
	}
	return caAddArgs{name: name, pem: string(pem.EncodeToMemory(block))}, nil
}

func runCAAdd(c *cli.Context, h hub.Client, a caAddArgs) error {
	cs, err := certificates(h)
	if err != nil {
		return err
	}
	out, err := cs.PutCertificate(c.Context, a.name, &hub.Certificate{Properties: hub.CertificateProperties{Certificate: a.pem, IsVerified: true}}, "")
	if hub.ErrorCode(err) == hub.CodePreconditionFailed {
		return fmt.Errorf("%w (remove it first, or add under another --name)", err)
	}
	if err != nil {
		return err
	}
	if c.String("output") == "json" {
		return printJSON(c.App.Writer, out)
	}
	fmt.Fprintf(c.App.Writer, "registered CA certificate %s: %s, thumbprint %s, expires %s\n", out.Name, out.Properties.Subject, out.Properties.Thumbprint, out.Properties.Expiry)
	return nil
}

func runCAList(c *cli.Context, h hub.Client, format string, _ struct{}) error {
	cs, err := certificates(h)
	if err != nil {
		return err
	}
	l, err := cs.ListCertificates(c.Context)
	if err != nil {
		return err
	}
	return printList(c, format, "CA certificates", l, []column[*hub.Certificate]{
		{name: "name", cell: func(x *hub.Certificate) string { return x.Name }},
		{name: "subject", clip: true, cell: func(x *hub.Certificate) string { return x.Properties.Subject }},
		{name: "verified", cell: func(x *hub.Certificate) string { return fmt.Sprint(x.Properties.IsVerified) }},
		{name: "expiry", cell: func(x *hub.Certificate) string { return x.Properties.Expiry }},
		{name: "thumbprint", wide: true, cell: func(x *hub.Certificate) string { return x.Properties.Thumbprint }},
	})
}

// certificates is h's CA registry: our hub's, embedded or over REST.
func certificates(h hub.Client) (hub.Certificates, error) {
	cs, ok := h.(hub.Certificates)
	if !ok {
		return nil, fmt.Errorf("this hub (%T) keeps no CA certificates", h)
	}
	return cs, nil
}
