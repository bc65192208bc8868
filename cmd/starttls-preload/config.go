package main

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/starttls-preload/starttls-preload/prcheck"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/validate"
)

// Config is the one configuration struct. Every key can be set in the config
// file (YAML, keys as below), as STARTTLS_PRELOAD_<SECTION>_<KEY> in the
// environment, or by the command's flag where one exists.
type Config struct {
	DataDir string `mapstructure:"data_dir"`
	Listen  string `mapstructure:"listen"`

	Validate  ValidateConfig  `mapstructure:"validate"`
	Admission AdmissionConfig `mapstructure:"admission"`
	Demotion  DemotionConfig  `mapstructure:"demotion"`
	Store     StoreConfig     `mapstructure:"store"`
	Fetch     FetchConfig     `mapstructure:"fetch"`
	Publish   PublishConfig   `mapstructure:"publish"`
	List      ListConfig      `mapstructure:"list"`
	Notify    NotifyConfig    `mapstructure:"notify"`
	Worker    WorkerConfig    `mapstructure:"worker"`
	GitHub    GitHubConfig    `mapstructure:"github"`
	Web       WebConfig       `mapstructure:"web"`
}

// archiveDir is the archive of signed lists: publish.archive, by default
// under the data directory.
func (c *Config) archiveDir() string { return c.orDataDir(c.Publish.Archive, "archive") }

// listKeyPath is the list signing key's file: list.key, by default under
// the data directory.
func (c *Config) listKeyPath() string { return c.orDataDir(c.List.Key, "list-signing.key") }

// orDataDir is a configured path, or, when none is set, name under the
// data directory.
func (c *Config) orDataDir(set, name string) string {
	if set != "" {
		return set
	}
	return filepath.Join(c.DataDir, name)
}

// WebConfig holds the web door's settings (web.*).
type WebConfig struct {
	// BaseURL is the service's absolute URL, used in mails and in the
	// set-up instructions; empty: http:// and the listen address.
	BaseURL string `mapstructure:"base_url"`
	// TrustedProxies are the CIDR prefixes of the reverse proxies whose
	// X-Forwarded-For is believed (comma-separated in
	// STARTTLS_PRELOAD_WEB_TRUSTED_PROXIES); empty: none.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// AllowPrivate lets visitors' checks reach loopback and private MX
	// addresses too, and only when validate.allow_private also does
	// (labs): by default a visitor cannot make the service probe a
	// private network, whatever the rounds may reach.
	AllowPrivate bool `mapstructure:"allow_private"`
	// SecretFile holds the secret the forms' CSRF tokens are signed with,
	// created on first run; empty: DATA_DIR/web-secret. Several serve
	// processes behind one balancer are given the same file.
	SecretFile string `mapstructure:"secret_file"`
}

// webSecretPath is web.secret_file, by default under the data directory.
func (c *Config) webSecretPath() string { return c.orDataDir(c.Web.SecretFile, "web-secret") }

// GitHubConfig holds the GitHub pull-request door's settings (github.*).
// With Repository and Token set, serve and worker watch the repository's
// open pull requests.
type GitHubConfig struct {
	APIURL     string `mapstructure:"api_url"`    // REST API base; default GITHUB_API_URL or https://api.github.com
	Repository string `mapstructure:"repository"` // OWNER/NAME; default GITHUB_REPOSITORY
	Token      string `mapstructure:"token"`      // default GITHUB_TOKEN
	// PollInterval is how often the watcher lists open pull requests.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// AutoMerge merges the list pull request of publish github.
	AutoMerge bool `mapstructure:"auto_merge"`
	// BotLogin is the account whose marked comment is the bot's (default:
	// the token's own account; github-actions[bot] in GitHub Actions).
	BotLogin string `mapstructure:"bot_login"`
	// Watcher is the process that watches the pull requests: "serve"
	// (default), "worker" (every worker process: run one) or "off".
	Watcher string `mapstructure:"watcher"`
}

// WorkerConfig holds the worker command's settings (worker.*).
type WorkerConfig struct {
	// MetricsListen is where the worker serves /metrics; empty: nowhere.
	MetricsListen string `mapstructure:"metrics_listen"`
}

// ValidateConfig holds the checker's settings (validate.*).
type ValidateConfig struct {
	Resolver        string        `mapstructure:"resolver"`
	CAFile          string        `mapstructure:"ca_file"`
	AllowPrivate    bool          `mapstructure:"allow_private"`
	Timeout         time.Duration `mapstructure:"timeout"`
	GreetingTimeout time.Duration `mapstructure:"greeting_timeout"`
	SMTPPort        int           `mapstructure:"smtp_port"`
	Concurrency     int           `mapstructure:"concurrency"`
	// HELOName is the name given in EHLO; empty means this host's name.
	HELOName string `mapstructure:"helo_name"`
}

// addCheckerFlags registers the checker's flags that check and pr-check
// share; checkerFlagKeys binds them to their validate.* keys.
func addCheckerFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("resolver", "", "DNS server to ask, HOST:PORT (default: the system's, from /etc/resolv.conf)")
	f.String("ca-file", "", "PEM file of roots trusted in addition to the system pool")
	f.Bool("allow-private", false, "permit loopback, private and other non-public target addresses (labs only)")
	f.Duration("timeout", 30*time.Second, "deadline for each network step")
	f.Int("smtp-port", 25, "SMTP port to connect to (labs only; mail is always on 25)")
	f.String("helo-name", "", "name to give in EHLO (default: this host's name); receivers may check that it resolves")
}

// checkerFlagKeys maps the validate.* keys to the flags of addCheckerFlags,
// plus extra (more keys of the command), for loadConfig.
func checkerFlagKeys(extra map[string]string) map[string]string {
	keys := map[string]string{
		"validate.resolver":      "resolver",
		"validate.ca_file":       "ca-file",
		"validate.allow_private": "allow-private",
		"validate.timeout":       "timeout",
		"validate.smtp_port":     "smtp-port",
		"validate.helo_name":     "helo-name",
	}
	maps.Copy(keys, extra)
	return keys
}

// checker is the checker's configuration from validate.*, without the
// concurrency and the dialer, which each command sets.
func (vc ValidateConfig) checker() validate.Config {
	return validate.Config{
		Resolver:        vc.Resolver,
		CAFile:          vc.CAFile,
		AllowPrivate:    vc.AllowPrivate,
		Timeout:         vc.Timeout,
		GreetingTimeout: vc.GreetingTimeout,
		SMTPPort:        vc.SMTPPort,
		HELOName:        vc.HELOName,
	}
}

// AdmissionConfig holds the admission rules (admission.*).
type AdmissionConfig struct {
	MinDays       int           `mapstructure:"min_days"`
	MinChecks     int           `mapstructure:"min_checks"`
	CheckInterval time.Duration `mapstructure:"check_interval"`
	// ListedInterval is how often listed domains are checked (shorter).
	ListedInterval time.Duration `mapstructure:"listed_interval"`
	// PromotionPeriod is how long a listed domain that asked for
	// enforcement must keep passing before promotion.
	PromotionPeriod time.Duration `mapstructure:"promotion_period"`
	// OptOut names domains that are never probed (comma-separated in
	// STARTTLS_PRELOAD_ADMISSION_OPT_OUT).
	OptOut []string `mapstructure:"opt_out"`
	// ConnectionsPerIP bounds the connections open at once to one MX address.
	ConnectionsPerIP int `mapstructure:"connections_per_ip"`
	// ProviderRate bounds new connections a second to one provider (a /24
	// or /48 network); 0 means no limit.
	ProviderRate float64 `mapstructure:"provider_rate"`
	// KeepHistory is how long checks are kept (decisions are kept forever).
	KeepHistory time.Duration `mapstructure:"keep_history"`
}

// ListConfig holds how the service signs the lists it generates (list.*).
type ListConfig struct {
	Key      string        `mapstructure:"key"`      // signing key, created on first run; default DATA_DIR/list-signing.key
	Validity time.Duration `mapstructure:"validity"` // expires = timestamp + validity; signed again at half of it
	Author   string        `mapstructure:"author"`

	// NextPubKey is a public key file (PEM or allowed_signers) whose keys
	// are published after the signing key's in pubkey.pem and
	// allowed_signers, to announce the next signing key before the switch.
	NextPubKey string `mapstructure:"next_pubkey"`

	// AllowTestTLD admits RFC 6761 ".test" names (labs and tests), as
	// validate.allow_private admits loopback addresses.
	AllowTestTLD bool `mapstructure:"allow_test_tld"`

	// RemovalLabel is the pull-request label by which maintainers approve
	// a removal without the owner's TXT proof.
	RemovalLabel string `mapstructure:"removal_label"`
}

// DemotionConfig holds the demotion rules (demotion.*).
type DemotionConfig struct {
	Grace time.Duration `mapstructure:"grace"`
	// RemoveAfter is how long a demoted domain may keep failing before it
	// leaves the list; zero keeps it listed (as testing) for ever.
	RemoveAfter time.Duration `mapstructure:"remove_after"`
}

// StoreConfig selects the store (store.*): driver "sqlite" (default, a file
// under data_dir) or "postgres" with a DSN.
type StoreConfig struct {
	Driver string `mapstructure:"driver"`
	DSN    string `mapstructure:"dsn"`
}

// FetchConfig holds the MTA-host client's settings (fetch.*).
type FetchConfig struct {
	URL          string        `mapstructure:"url"`
	PubKey       string        `mapstructure:"pubkey"`
	StateDir     string        `mapstructure:"state_dir"`
	PostfixMap   string        `mapstructure:"postfix_map"`
	Postmap      string        `mapstructure:"postmap"`
	EximFile     string        `mapstructure:"exim_file"`
	Reload       string        `mapstructure:"reload"`
	EarlyAdopter bool          `mapstructure:"early_adopter"`
	Jitter       time.Duration `mapstructure:"jitter"`
	CAFile       string        `mapstructure:"ca_file"`
	Timeout      time.Duration `mapstructure:"timeout"`
	MaxSize      int64         `mapstructure:"max_size"`
	// CommandTimeout bounds postmap and the reload command.
	CommandTimeout time.Duration `mapstructure:"command_timeout"`
}

// NotifyConfig holds how contacts are told of failures (notify.*). An
// empty smtp_relay logs notices only.
type NotifyConfig struct {
	SMTPRelay string        `mapstructure:"smtp_relay"` // host:port
	From      string        `mapstructure:"from"`
	StartTLS  bool          `mapstructure:"starttls"` // use STARTTLS when the relay offers it
	CAFile    string        `mapstructure:"ca_file"`  // roots for the relay's certificate
	Timeout   time.Duration `mapstructure:"timeout"`  // for one whole send
}

// PublishConfig holds where the signed lists are kept (publish.*).
type PublishConfig struct {
	Archive string `mapstructure:"archive"` // default DATA_DIR/archive
	PubKey  string `mapstructure:"pubkey"`  // public key file (PEM or allowed_signers)
}

func defaults(v *viper.Viper) {
	v.SetDefault("data_dir", "./data")
	v.SetDefault("listen", "127.0.0.1:8080")
	v.SetDefault("validate.resolver", "")
	v.SetDefault("validate.ca_file", "")
	v.SetDefault("validate.allow_private", false)
	v.SetDefault("validate.timeout", 30*time.Second)
	v.SetDefault("validate.greeting_timeout", 60*time.Second)
	v.SetDefault("validate.smtp_port", 25)
	v.SetDefault("validate.concurrency", 64)
	v.SetDefault("validate.helo_name", "")
	v.SetDefault("admission.min_days", 7)
	v.SetDefault("admission.min_checks", 28)
	v.SetDefault("admission.check_interval", 6*time.Hour)
	v.SetDefault("admission.listed_interval", time.Hour)
	v.SetDefault("admission.promotion_period", 7*24*time.Hour)
	v.SetDefault("admission.opt_out", []string{})
	v.SetDefault("admission.connections_per_ip", 2)
	v.SetDefault("admission.provider_rate", 10.0)
	v.SetDefault("admission.keep_history", 180*24*time.Hour)
	v.SetDefault("list.key", "")
	v.SetDefault("list.next_pubkey", "")
	v.SetDefault("list.validity", 7*24*time.Hour)
	v.SetDefault("list.author", "starttls-preload")
	v.SetDefault("demotion.grace", 24*time.Hour)
	v.SetDefault("demotion.remove_after", 30*24*time.Hour)
	v.SetDefault("store.driver", "sqlite")
	v.SetDefault("store.dsn", "")
	v.SetDefault("fetch.url", "")
	v.SetDefault("fetch.pubkey", "")
	v.SetDefault("fetch.state_dir", "/var/lib/starttls-preload")
	v.SetDefault("fetch.postfix_map", "")
	v.SetDefault("fetch.postmap", "")
	v.SetDefault("fetch.exim_file", "")
	v.SetDefault("fetch.reload", "")
	v.SetDefault("fetch.early_adopter", false)
	v.SetDefault("fetch.jitter", time.Duration(0))
	v.SetDefault("fetch.ca_file", "")
	v.SetDefault("fetch.timeout", publish.DefaultTimeout)
	v.SetDefault("fetch.max_size", int64(publish.DefaultMaxSize))
	v.SetDefault("fetch.command_timeout", publish.DefaultCommandTimeout)
	v.SetDefault("notify.smtp_relay", "")
	v.SetDefault("notify.from", "")
	v.SetDefault("notify.starttls", true)
	v.SetDefault("notify.ca_file", "")
	v.SetDefault("notify.timeout", 30*time.Second)
	v.SetDefault("publish.archive", "")
	v.SetDefault("publish.pubkey", "")
	v.SetDefault("worker.metrics_listen", "")
	v.SetDefault("web.base_url", "")
	v.SetDefault("web.trusted_proxies", []string{})
	v.SetDefault("web.allow_private", false)
	v.SetDefault("web.secret_file", "")
	v.SetDefault("list.allow_test_tld", false)
	v.SetDefault("list.removal_label", prcheck.DefaultRemovalLabel)
	v.SetDefault("github.api_url", "")
	v.SetDefault("github.repository", "")
	v.SetDefault("github.token", "")
	v.SetDefault("github.poll_interval", time.Minute)
	v.SetDefault("github.auto_merge", false)
	v.SetDefault("github.bot_login", "")
	v.SetDefault("github.watcher", "serve")
}

// loadConfig reads defaults, the config file, the environment and the
// command's flags (bound through flagKeys: config key -> flag name), in
// rising order of precedence.
func loadConfig(cmd *cobra.Command, flagKeys map[string]string) (*Config, error) {
	v := viper.New()
	defaults(v)
	v.SetEnvPrefix("STARTTLS_PRELOAD")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	path, _ := cmd.Flags().GetString("config")
	explicit := path != ""
	if !explicit {
		// Only ./starttls-preload.yaml: viper's name search would also
		// read a file named just "starttls-preload" (the binary itself
		// when run from where it was built).
		if _, err := os.Stat("starttls-preload.yaml"); err == nil {
			path = "starttls-preload.yaml"
		}
	}
	if path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			var nf viper.ConfigFileNotFoundError
			if explicit || !errors.As(err, &nf) {
				return nil, usagef("reading config: %v", err)
			}
		}
	}
	for key, name := range flagKeys {
		f := cmd.Flags().Lookup(name)
		if f == nil {
			return nil, fmt.Errorf("internal: no flag %q for key %q", name, key)
		}
		if err := v.BindPFlag(key, f); err != nil {
			return nil, err
		}
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		return nil, usagef("config: %v", err)
	}
	return &c, nil
}

func initLogging(cmd *cobra.Command) error {
	lvl, _ := cmd.Flags().GetString("log-level")
	format, _ := cmd.Flags().GetString("log-format")
	var level slog.Level
	if err := level.UnmarshalText([]byte(lvl)); err != nil {
		return usagef("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return usagef("--log-format must be text or json, not %q", format)
	}
	slog.SetDefault(slog.New(h))
	return nil
}
