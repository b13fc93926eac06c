// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title gpumarket escrow
/// @notice Every job is paid through this contract. A developer's EIP-712 order moves its
/// maximum payment from the developer's deposit into escrow; the provider's signed result
/// starts a challenge window; after it, anyone finalizes: the provider earns its amount less
/// the protocol fee (a share of which is burned), the developer gets the rest back. A challenge
/// inside the window goes to the arbiter, who either slashes the provider's locked stake and
/// refunds the developer, or pays the provider (with the challenger's bond). A result locks
/// stake that scales with the work: `max(minStake, amount * stakeMultiple)`. A verifier that
/// re-runs a sampled job may extend its window once, by at most the terms' `verifyWindow`.
/// A sampled or redundant job is opened with `openVerified`: when it settles, its developer
/// pays a premium (`premiumBps` of the amount, plus the amount once per replica of a redundant
/// job, at most what the escrow holds beyond it) into the verification pool, which pays the re-runners (`payRerun`, a verifier relaying a registered account's
/// signed claim for the job) and takes the slash share of a verifier's won challenge (a
/// verifier challenges without a bond: the pool paid for the runs that proved the fault).
/// @dev Gas matters: one job, opened, committed and finalized, costs under 150,000 gas. A job
/// is one storage word; accounts are numbered so a job can name both of its parties in it.
/// Each step reads the fewest words it can, once, and writes each once (packed by hand: the
/// compiler writes a struct field by field):
/// - an open and a commit read the config word (pause flag, current terms' index, window,
///   minStake and stakeMultiple, and the primary coordinator, whose calls skip the role
///   mapping), the job, and the signer's wallet word keyed by its address (id, deposit, stake,
///   locked stake);
/// - a finalize reads the job, the protocol word (treasury and burn balances, and the current
///   terms' fee, burn share, minStake and stakeMultiple), and the two parties' id words, which
///   it credits: the provider's earnings and unlocked stake (what its commit locked,
///   recomputed from the job's amount and terms), the developer's refund (a verified job's
///   finalize alone also reads its terms word, for the premium, and writes the pool; a plain
///   job's pays one flag test for it). An open or a withdrawal that runs short folds the
///   refunds into the deposit; a commit or an unstake that runs short
///   folds the unlocked stake out of the locked. Views add them up, so a refund is part of the
///   deposit, and unlocked stake free, the moment they are credited.
/// Batches keep the last wallet word, or the last id words and the terms, between jobs. Money
/// leaves only through pull withdrawals, so one blocked recipient never stops the others.
/// Invariant: the token balance equals deposits + earnings + stakes + unstaking + escrow +
/// bonds + treasury + burn + the verification pool.
contract GpuMarket is AccessControl, ReentrancyGuardTransient, EIP712 {
    using SafeERC20 for IERC20;

    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant VERIFIER_ROLE = keccak256("VERIFIER_ROLE");
    bytes32 internal constant ORDER_TYPEHASH = keccak256(
        "Order(bytes32 jobId,bytes32 specHash,uint64 maxPayment,uint64 deadline,uint64 nonce)"
    );
    bytes32 internal constant RESULT_TYPEHASH =
        keccak256("Result(bytes32 jobId,bytes32 resultHash,uint64 amount)");
    uint16 public constant MAX_FEE_BPS = 1000;
    uint16 internal constant BPS = 10_000;
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;
    string private constant NAME = "gpumarket"; // the EIP-712 domain's
    string private constant VERSION = "1";

    enum State {
        None,
        Open,
        Committed,
        Disputed,
        Settled,
        Refunded,
        Cancelled
    }

    /// @dev Stored packed in one word (`_jobs`). `deadline`: until commit, the time after which
    /// the job may expire; after commit, the end of the challenge window (moved once by
    /// `extendWindow`, which sets a flag bit above the state). A job opened by `openVerified`
    /// carries another flag bit above the state: it pays the premium when it settles.
    struct Job {
        uint32 developer;
        uint32 provider;
        uint64 maxPayment;
        uint64 amount;
        uint32 deadline;
        uint16 terms;
        State state;
    }

    /// @dev Snapshotted per job at open, so a later change never touches a running job.
    /// Stored packed in one word per index (`_terms`). A result locks (and a lost challenge
    /// slashes) `max(minStake, amount * stakeMultiple)` of its provider's stake: `minStake` is
    /// the floor, and a multiple of 0 locks the floor alone. `verifyWindow`: the most seconds a
    /// verifier may add, once, to a job's challenge window (0: no extension; at most 2^24 - 1,
    /// about 194 days: it is stored in 24 bits). `premiumBps`: the share of a verified job's
    /// amount its developer pays into the verification pool when the job settles (at most
    /// 10,000, and never more than the escrow holds beyond the amount).
    struct Terms {
        uint16 feeBps;
        uint16 burnBps;
        uint16 slashShareBps;
        uint32 window;
        uint64 minStake;
        uint64 challengeBond;
        uint8 stakeMultiple;
        uint32 verifyWindow;
        uint16 premiumBps;
    }

    struct Order {
        bytes32 jobId;
        bytes32 specHash;
        uint64 maxPayment;
        uint64 deadline;
        uint64 nonce;
    }

    /// @dev An EIP-2098 compact signature: `r`, and `s` with the parity of `v` in its top bit
    /// (64 bytes of calldata where `bytes` takes 160).
    struct Sig {
        bytes32 r;
        bytes32 vs;
    }

    struct Unstaking {
        uint64 amount;
        uint64 readyAt;
    }

    /// @dev `challenger`: the developer's account id; 0 for a verifier's challenge, which puts
    /// up no bond and earns nothing (a ruling against the provider pays the slash share to the
    /// pool), so it needs no account.
    struct Dispute {
        uint32 challenger;
        uint64 bond;
    }

    // Bit offsets of the packed words. A job: developer and provider account ids,
    // maxPayment, amount, deadline, terms index, state, the flag of an extended window (set by
    // `extendWindow` alone; an open writes it clear, a commit finds it clear, and every later
    // step changes only the state, keeping it) and the flag of a verified (sampled) job (set by
    // `openVerified` alone, at open; a commit keeps it with the developer, maxPayment and
    // terms, and every later step changes only the state or the deadline, keeping it).
    uint256 private constant J_PROVIDER = 32;
    uint256 private constant J_MAX = 64;
    uint256 private constant J_AMOUNT = 128;
    uint256 private constant J_DEADLINE = 192;
    uint256 private constant J_TERMS = 224;
    uint256 private constant J_STATE = 240;
    uint256 private constant J_EXTENDED = 1 << 248;
    uint256 private constant J_VERIFIED = 1 << 249;
    // A redundant job's replicas beyond its own run (3 bits above the verified flag, set with
    // it by `openVerified`): each adds the whole amount to the premium.
    uint256 private constant J_COPIES = 250;
    uint256 private constant J_VERIFY_BITS = J_VERIFIED | (7 << J_COPIES);
    // An account's word keyed by its address (`_wallets`): its id, deposit, stake, and the
    // stake locked by the results it committed (less what finalize has since unlocked, which
    // sits in its id word until a commit or an unstake runs short and folds it in).
    uint256 private constant A_DEPOSIT = 32;
    uint256 private constant A_STAKE = 96;
    uint256 private constant A_LOCKED = 160;
    // An account's word keyed by its id (`_balances`), which steps that know only the id
    // credit: refunds (part of the deposit), earnings, and stake unlocked by settled results.
    uint256 private constant B_REFUNDS = 0;
    uint256 private constant B_EARNINGS = 64;
    uint256 private constant B_UNLOCKED = 128;
    uint256 private constant B_KEEP = 1 << 255; // the id word is never zero: never re-created
    // Terms: feeBps, burnBps, slashShareBps, window, minStake, challengeBond, stakeMultiple,
    // verifyWindow (24 bits), premiumBps (the last 16 bits: the word is full).
    uint256 private constant T_BURN = 16;
    uint256 private constant T_SLASH = 32;
    uint256 private constant T_WINDOW = 48;
    uint256 private constant T_MIN_STAKE = 80;
    uint256 private constant T_BOND = 144;
    uint256 private constant T_MULTIPLE = 208;
    uint256 private constant T_VERIFY = 216;
    uint256 private constant T_PREMIUM = 240;
    // The config word: pause flag, current terms index (15 bits), the current terms' window,
    // minStake (40 bits) and stakeMultiple (8 bits), and the primary coordinator.
    uint256 private constant C_PAUSED = 1;
    uint256 private constant C_TERMS = 1;
    uint256 private constant C_WINDOW = 16;
    uint256 private constant C_MIN_STAKE = 48;
    uint256 private constant C_MULTIPLE = 88;
    uint256 private constant C_COORDINATOR = 96;
    uint256 private constant U15 = (1 << 15) - 1;
    uint256 private constant U24 = (1 << 24) - 1;
    uint256 private constant U40 = (1 << 40) - 1;
    // The protocol word: treasury (71 bits), a bit always set, burn (72 bits), and the current
    // terms' index, then from P_FEE up their settlement word (what finalize needs of terms: fee,
    // burn share, minStake in 56 bits and stakeMultiple), so `p >> P_FEE` is that word.
    uint256 private constant S_BURN = 16;
    uint256 private constant S_MIN_STAKE = 32;
    uint256 private constant S_MULTIPLE = 88;
    uint256 private constant U56 = (1 << 56) - 1;
    uint256 private constant U71 = (1 << 71) - 1;
    uint256 private constant U72 = (1 << 72) - 1;
    uint256 private constant P_KEEP = 1 << 71;
    uint256 private constant P_BURN = 72;
    uint256 private constant P_TERMS = 144;
    uint256 private constant P_FEE = 160;
    uint256 private constant P_BURN_BPS = P_FEE + S_BURN;
    uint256 private constant P_MIN_STAKE = P_FEE + S_MIN_STAKE;
    uint256 private constant P_MULTIPLE = P_FEE + S_MULTIPLE;
    uint256 private constant U16 = type(uint16).max;
    uint256 private constant U32 = type(uint32).max;
    uint256 private constant U64 = type(uint64).max;

    IERC20 public immutable token;
    address public treasury;
    uint64 public unstakeDelay;
    /// @dev The fees owed to the treasury (low 71 bits) and the burn share not yet burned (72
    /// bits from bit 72), with a bit always set so the word never returns to zero (the first
    /// finalize after both are paid out does not pay 20,000 gas to create it again); above
    /// them, the current terms' index, fee, burn share, minStake and stakeMultiple, so a
    /// finalize of a job on the current terms reads no terms word.
    uint256 private _protocol = P_KEEP;

    /// @dev Every open and commit reads this one word: the pause flag, the current terms' index,
    /// window, minStake and stakeMultiple (a commit on the current terms reads no terms word)
    /// and the primary coordinator (whose calls need no read of the role mapping; other
    /// coordinators' do).
    uint256 private _config;
    /// @dev A mapping, not an array: reading a job's terms needs no length check (a cold read).
    mapping(uint256 index => uint256) private _terms;
    mapping(bytes32 jobId => uint256) private _jobs;
    mapping(address account => uint256) private _wallets;
    address[] public accounts;
    mapping(uint32 id => uint256) private _balances;
    mapping(uint32 id => Unstaking) public unstaking;
    mapping(bytes32 jobId => Dispute) public disputes;
    /// @dev The verification pool: verified jobs' premiums, the slash shares of verifiers' won
    /// challenges and `fundPool` top-ups, which `payRerun` pays re-runners from. Its own slot:
    /// only verified jobs, verifiers and funders touch it.
    uint256 private _pool;
    /// @dev Re-runs paid, keyed by `keccak256(abi.encode(jobId, runner's account id))`: each
    /// re-runner is paid once per job.
    mapping(bytes32 key => bool) private _rerunPaid;

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event Staked(address indexed provider, uint256 amount);
    event UnstakeRequested(address indexed provider, uint256 amount, uint256 readyAt);
    event StakeWithdrawn(address indexed provider, uint256 amount);
    event EarningsWithdrawn(address indexed account, uint256 amount);
    /// @dev The developer is `accounts(jobs(jobId).developer)`: naming it here would cost every
    /// job 375 gas.
    event JobOpened(bytes32 indexed jobId, bytes32 specHash, uint256 maxPayment);
    event ResultCommitted(
        bytes32 indexed jobId,
        address provider,
        bytes32 resultHash,
        uint256 amount,
        uint256 windowEnd
    );
    event Challenged(bytes32 indexed jobId, address indexed challenger, uint256 bond);
    event Resolved(bytes32 indexed jobId, bool providerAtFault, uint256 slashed);
    event Settled(
        bytes32 indexed jobId, uint256 providerPaid, uint256 fee, uint256 burned, uint256 refund
    );
    event Refunded(bytes32 indexed jobId, uint256 amount);
    event Cancelled(bytes32 indexed jobId, uint256 refund);
    event WindowExtended(bytes32 indexed jobId, uint256 windowEnd);
    /// @dev A verified job's settlement: what its developer paid into the verification pool
    /// (out of the refund; `Settled`'s refund is what was left).
    event PremiumPaid(bytes32 indexed jobId, uint256 premium);
    event PoolFunded(address indexed from, uint256 amount);
    /// @dev A re-runner paid from the pool: the on-chain evidence of its signed claim.
    event RerunPaid(
        bytes32 indexed jobId, address indexed runner, bytes32 resultHash, uint256 amount
    );
    event TermsChanged(uint16 indexed index, Terms terms);
    event TreasuryChanged(address treasury);
    event UnstakeDelayChanged(uint64 delay);
    event TreasuryWithdrawn(address indexed to, uint256 amount);
    event Burned(uint256 amount);
    event Paused(address account);
    event Unpaused(address account);

    error UnknownAccount(address account);
    error InsufficientBalance(uint256 available, uint256 needed);
    error WrongState(bytes32 jobId, State state);
    error OrderExpired(uint256 deadline, uint256 now_);
    error BadSignature(address signer);
    error AmountOverMax(uint256 amount, uint256 maxPayment);
    error StakeTooLow(uint256 free, uint256 needed);
    error WindowClosed(uint256 windowEnd, uint256 now_);
    error WindowOpen(uint256 windowEnd, uint256 now_);
    error NotDeveloperOrVerifier(address caller);
    error NotExpired(uint256 deadline, uint256 now_);
    error UnstakeNotReady(uint256 readyAt, uint256 now_);
    error BadTerms();
    error ZeroAmount();
    error EnforcedPause();
    error ExpectedPause();
    error UnknownTerms(uint256 index);
    error ProtocolBalanceFull();
    error AlreadyExtended(bytes32 jobId);
    error ExtensionTooLong(uint256 extra, uint256 max);
    error AlreadyPaid(bytes32 jobId, address runner);
    error InsufficientPool(uint256 pool, uint256 needed);
    error RunnerIsProvider(bytes32 jobId, address runner);

    constructor(IERC20 token_, address admin, address treasury_, Terms memory initial)
        EIP712(NAME, VERSION)
    {
        token = token_;
        treasury = treasury_;
        unstakeDelay = 7 days;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        accounts.push(address(0)); // id 0 means "no account"
        _setTerms(initial, true);
    }

    /// @notice ERC-5267: the EIP-712 domain orders and results are signed in, exactly as
    /// OpenZeppelin's `EIP712` returns it, with the name and version written as the constants
    /// they are (its own version reads them back from short strings: 570 bytes of code the
    /// contract has no room for under the 24,576-byte limit).
    function eip712Domain()
        public
        view
        override
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", NAME, VERSION, block.chainid, address(this), bytes32(0), extensions);
    }

    // ------------------------------------------------------------------ packed storage

    function _loadJob(bytes32 jobId) internal view returns (Job memory j) {
        uint256 w = _jobs[jobId];
        j.developer = uint32(w);
        j.provider = uint32(w >> J_PROVIDER);
        j.maxPayment = uint64(w >> J_MAX);
        j.amount = uint64(w >> J_AMOUNT);
        j.deadline = uint32(w >> J_DEADLINE);
        j.terms = uint16(w >> J_TERMS);
        j.state = State(uint8(w >> J_STATE));
    }

    /// @dev The storage slot of job `jobId`'s word, computed once per step (the compiler would
    /// hash the key again for the write after the signature check).
    function _jobSlot(bytes32 jobId) internal pure returns (bytes32 slot) {
        assembly ("memory-safe") {
            mstore(0, jobId)
            mstore(0x20, _jobs.slot)
            slot := keccak256(0, 0x40)
        }
    }

    function _loadSlot(bytes32 slot) internal view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(slot)
        }
    }

    function _storeSlot(bytes32 slot, uint256 w) internal {
        assembly ("memory-safe") {
            sstore(slot, w)
        }
    }

    function _setState(bytes32 jobId, uint256 w, State next) internal {
        _jobs[jobId] = (w & ~(uint256(0xff) << J_STATE)) | (uint256(uint8(next)) << J_STATE);
    }

    /// @dev Field `at` (a B_ offset) of a balance word.
    function _get(uint256 w, uint256 at) internal pure returns (uint64) {
        return uint64(w >> at);
    }

    /// @dev The balance word with field `at` replaced (callers compute the value with checked
    /// uint64 arithmetic, so an overflow reverts as it would on a struct field).
    function _put(uint256 w, uint256 at, uint64 value) internal pure returns (uint256) {
        return (w & ~(U64 << at)) | (uint256(value) << at);
    }

    /// @dev Add to field `at` (a B_ offset) of an account's id word.
    function _credit(uint32 id, uint256 at, uint64 amount) internal {
        uint256 w = _balances[id];
        _balances[id] = _put(w, at, _get(w, at) + amount);
    }

    /// @dev Field `at` (a B_ offset) of an account's id word, taken out (left at zero): what a
    /// fold moves into the wallet word.
    function _takeCredit(uint32 id, uint256 at) internal returns (uint64 taken) {
        uint256 b = _balances[id];
        taken = _get(b, at);
        if (taken != 0) _balances[id] = _put(b, at, 0);
    }

    /// @dev The wallet word with the refunds finalize and cancel credited (in the id word)
    /// moved into its deposit: what an open or a withdrawal does when the deposit runs short.
    function _foldRefunds(uint256 a) internal returns (uint256) {
        return _put(a, A_DEPOSIT, _get(a, A_DEPOSIT) + _takeCredit(uint32(a), B_REFUNDS));
    }

    /// @dev The wallet word with the stake finalize unlocked (in the id word) taken off its
    /// locked stake: what a commit or an unstake does when the free stake runs short.
    function _foldUnlocked(uint256 a) internal returns (uint256) {
        return _put(a, A_LOCKED, _get(a, A_LOCKED) - _takeCredit(uint32(a), B_UNLOCKED));
    }

    function _creditProtocol(uint256 toTreasury, uint256 toBurn) internal {
        _protocol = _withShare(_protocol, toTreasury, toBurn);
    }

    /// @dev Protocol word `w` with `toTreasury` and `toBurn` added.
    function _withShare(uint256 w, uint256 toTreasury, uint256 toBurn)
        internal
        pure
        returns (uint256)
    {
        uint256 t = (w & U71) + toTreasury;
        uint256 b = ((w >> P_BURN) & U72) + toBurn;
        // 71 and 72 bits hold 2^7 of the largest possible fees before a withdrawal
        if (t > U71 || b > U72) revert ProtocolBalanceFull();
        return (w & ~((U72 << P_BURN) | U71)) | (b << P_BURN) | t;
    }

    /// @dev The settlement word of terms word `t`: the fields a settlement needs (fee, burn
    /// share, minStake, stakeMultiple), laid out as the protocol word holds them (from P_FEE)
    /// for the current terms. Fee and burn share keep their offsets.
    function _settlementWord(uint256 t) internal pure returns (uint256) {
        return uint256(uint32(t)) | (uint256(uint64(t >> T_MIN_STAKE)) << S_MIN_STAKE)
            | (uint256(uint8(t >> T_MULTIPLE)) << S_MULTIPLE);
    }

    /// @dev The stake a result of `amount` locks (and a lost challenge slashes):
    /// `max(floor, amount * multiple)`, in 256 bits (at most 72 bits: never wraps). A commit
    /// refuses one over the provider's free stake, so one a commit locked fits 64 bits.
    function _stakeToLock(uint256 amount, uint256 floor, uint256 multiple)
        internal
        pure
        returns (uint256 need)
    {
        unchecked {
            need = amount * multiple; // < 2^64 * 2^8
        }
        if (need < floor) need = floor;
    }

    /// @dev The stake a committed job (word `w`) locked under settlement word `s`.
    function _lockedBy(uint256 w, uint256 s) internal pure returns (uint64) {
        // it fitted the provider's 64-bit stake when it was locked
        return uint64(
            _stakeToLock(uint64(w >> J_AMOUNT), (s >> S_MIN_STAKE) & U56, uint8(s >> S_MULTIPLE))
        );
    }

    /// @dev How a committed job's escrow splits under settlement word `t`: the amount claimed,
    /// the fee (rounded down: the dust stays with the provider), its burn share, the refund.
    function _split(uint256 w, uint256 t)
        internal
        pure
        returns (uint64 amount, uint64 fee, uint64 burned, uint64 refund)
    {
        amount = uint64(w >> J_AMOUNT);
        unchecked {
            // fee <= amount and burned <= fee (both shares <= 100%), amount <= maxPayment
            fee = uint64(uint256(amount) * uint16(t) / BPS);
            burned = uint64(uint256(fee) * uint16(t >> S_BURN) / BPS);
            refund = uint64(w >> J_MAX) - amount;
        }
    }

    /// @dev The premium a verified job (word `w`) pays into the pool as it settles: its terms'
    /// `premiumBps` of the amount (rounded down), at most the refund (what the escrow holds
    /// beyond the amount). The one read of a terms word a settlement of the current terms
    /// makes, and only for a verified job: the protocol word has no room for the premium.
    function _premium(uint256 w, uint64 amount, uint64 refund) internal view returns (uint64) {
        uint256 bps = uint16(_terms[uint16(w >> J_TERMS)] >> T_PREMIUM) + (w >> J_COPIES & 7) * BPS;
        uint256 premium = uint256(amount) * bps / BPS; // at most 8 times the amount: no overflow
        return premium < refund ? uint64(premium) : refund;
    }

    function _packTerms(Terms memory t) internal pure returns (uint256) {
        return uint256(t.feeBps) | (uint256(t.burnBps) << T_BURN)
            | (uint256(t.slashShareBps) << T_SLASH) | (uint256(t.window) << T_WINDOW)
            | (uint256(t.minStake) << T_MIN_STAKE) | (uint256(t.challengeBond) << T_BOND)
            | (uint256(t.stakeMultiple) << T_MULTIPLE) | (uint256(t.verifyWindow) << T_VERIFY)
            | (uint256(t.premiumBps) << T_PREMIUM);
    }

    function _unpackTerms(uint256 w) internal pure returns (Terms memory t) {
        t.feeBps = uint16(w);
        t.burnBps = uint16(w >> T_BURN);
        t.slashShareBps = uint16(w >> T_SLASH);
        t.window = uint32(w >> T_WINDOW);
        t.minStake = uint64(w >> T_MIN_STAKE);
        t.challengeBond = uint64(w >> T_BOND);
        t.stakeMultiple = uint8(w >> T_MULTIPLE);
        t.verifyWindow = uint24(w >> T_VERIFY);
        t.premiumBps = uint16(w >> T_PREMIUM);
    }

    /// @notice A job, as the struct's fields.
    function jobs(bytes32 jobId)
        external
        view
        returns (
            uint32 developer,
            uint32 provider,
            uint64 maxPayment,
            uint64 amount,
            uint32 deadline,
            uint16 termsIndex,
            State state
        )
    {
        Job memory j = _loadJob(jobId);
        return (j.developer, j.provider, j.maxPayment, j.amount, j.deadline, j.terms, j.state);
    }

    /// @notice An account's deposit, earnings, stake and the part of the stake locked by jobs.
    function balances(uint32 id)
        external
        view
        returns (uint64 deposit_, uint64 earnings, uint64 stake_, uint64 lockedStake)
    {
        uint256 b = _balances[id];
        uint256 a = id < accounts.length ? _wallets[accounts[id]] : 0;
        return (
            _get(a, A_DEPOSIT) + _get(b, B_REFUNDS),
            _get(b, B_EARNINGS),
            _get(a, A_STAKE),
            _get(a, A_LOCKED) - _get(b, B_UNLOCKED)
        );
    }

    /// @notice An address's account id (0: none).
    function accountId(address account) external view returns (uint32) {
        return uint32(_wallets[account]);
    }

    /// @notice The terms at `index` (a job's snapshot; the last one is current).
    function terms(uint256 index)
        external
        view
        returns (
            uint16 feeBps,
            uint16 burnBps,
            uint16 slashShareBps,
            uint32 window,
            uint64 minStake,
            uint64 challengeBond,
            uint8 stakeMultiple,
            uint32 verifyWindow,
            uint16 premiumBps
        )
    {
        if (index > _currentTermsIndex()) revert UnknownTerms(index);
        Terms memory t = _unpackTerms(_terms[index]);
        return (
            t.feeBps,
            t.burnBps,
            t.slashShareBps,
            t.window,
            t.minStake,
            t.challengeBond,
            t.stakeMultiple,
            t.verifyWindow,
            t.premiumBps
        );
    }

    /// @notice What the verification pool holds for re-runs: verified jobs' premiums, the
    /// slash shares of verifiers' won challenges and `fundPool` top-ups, less re-runs paid.
    function verificationPool() external view returns (uint256) {
        return _pool;
    }

    /// @notice Fees owed to the treasury, not yet withdrawn.
    function treasuryBalance() public view returns (uint128) {
        return uint128(_protocol & U71);
    }

    /// @notice The fees' burn share, not yet burned.
    function burnBalance() public view returns (uint128) {
        return uint128((_protocol >> P_BURN) & U72);
    }

    // ------------------------------------------------------------------ accounts

    /// @dev The wallet word of `who`, giving it the next account id (stored at once) when it
    /// has none.
    function _account(address who) internal returns (uint256 a) {
        a = _wallets[who];
        if (uint32(a) == 0) {
            a = accounts.length;
            accounts.push(who);
            _wallets[who] = a;
            // created here, once, so that no finalize pays to create it
            _balances[uint32(a)] = B_KEEP;
        }
    }

    function _known(address who) internal view returns (uint256 a) {
        a = _wallets[who];
        if (uint32(a) == 0) revert UnknownAccount(who);
    }

    /// @notice Add to your deposit, from which jobs are escrowed.
    function deposit(uint64 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint256 a = _account(msg.sender);
        token.safeTransferFrom(msg.sender, address(this), amount);
        _wallets[msg.sender] = _put(a, A_DEPOSIT, _get(a, A_DEPOSIT) + amount);
        emit Deposited(msg.sender, amount);
    }

    /// @notice Take free deposit back; works while paused.
    function withdraw(uint64 amount) external nonReentrant {
        uint256 a = _known(msg.sender);
        if (_get(a, A_DEPOSIT) < amount) a = _foldRefunds(a);
        uint64 has = _get(a, A_DEPOSIT);
        if (has < amount) revert InsufficientBalance(has, amount);
        _wallets[msg.sender] = _put(a, A_DEPOSIT, has - amount);
        token.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    /// @notice Stake as a provider; a committed job locks `max(minStake, amount *
    /// stakeMultiple)` of it until settled.
    function stake(uint64 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint256 a = _account(msg.sender);
        token.safeTransferFrom(msg.sender, address(this), amount);
        _wallets[msg.sender] = _put(a, A_STAKE, _get(a, A_STAKE) + amount);
        emit Staked(msg.sender, amount);
    }

    /// @notice Start taking unlocked stake out; it can be withdrawn after `unstakeDelay`.
    function requestUnstake(uint64 amount) external {
        uint256 a = _known(msg.sender);
        uint64 staked = _get(a, A_STAKE);
        if (staked - _get(a, A_LOCKED) < amount) a = _foldUnlocked(a);
        uint64 free = staked - _get(a, A_LOCKED);
        if (free < amount) revert InsufficientBalance(free, amount);
        _wallets[msg.sender] = _put(a, A_STAKE, staked - amount);
        Unstaking storage u = unstaking[uint32(a)];
        u.amount += amount;
        u.readyAt = uint64(block.timestamp) + unstakeDelay;
        emit UnstakeRequested(msg.sender, amount, u.readyAt);
    }

    /// @notice Withdraw stake whose unstake delay has passed; works while paused.
    function withdrawStake() external nonReentrant {
        uint32 id = uint32(_known(msg.sender));
        Unstaking memory u = unstaking[id];
        if (block.timestamp < u.readyAt) revert UnstakeNotReady(u.readyAt, block.timestamp);
        if (u.amount == 0) revert ZeroAmount();
        delete unstaking[id];
        token.safeTransfer(msg.sender, u.amount);
        emit StakeWithdrawn(msg.sender, u.amount);
    }

    /// @notice Add to the verification pool from your wallet (anyone may: an operator seeds it
    /// so re-runs can be paid before premiums arrive). Pool money leaves only to re-runners.
    function fundPool(uint64 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        token.safeTransferFrom(msg.sender, address(this), amount);
        _pool += amount;
        emit PoolFunded(msg.sender, amount);
    }

    /// @notice Withdraw earnings (providers' pay, challengers' rewards); works while paused.
    function withdrawEarnings() external nonReentrant {
        uint32 id = uint32(_known(msg.sender));
        uint256 w = _balances[id];
        uint64 amount = _get(w, B_EARNINGS);
        if (amount == 0) revert ZeroAmount();
        _balances[id] = _put(w, B_EARNINGS, 0);
        token.safeTransfer(msg.sender, amount);
        emit EarningsWithdrawn(msg.sender, amount);
    }

    // ------------------------------------------------------------------ batches

    /// @dev What a settlement keeps in memory between the jobs of a batch (a single finalize
    /// is a batch of one): the last provider's and developer's id words and the last terms, so
    /// an account that recurs is read and written once per batch, and the protocol's share,
    /// credited once at the end (`_flush`). An account is never held in both slots (a developer
    /// may also be the provider): taking it moves it across. (Opens and commits keep only the
    /// last wallet word, on the stack: see `_open` and `_commit`.)
    struct Batch {
        uint32 providerId;
        uint32 developerId;
        uint32 termsKey; // index + 1; 0: none loaded
        uint32 cachedKey; // the protocol word's terms index + 1; 0: not read yet
        uint256 provider;
        uint256 developer;
        uint256 terms;
        uint256 cachedTerms; // the protocol word's settlement word (fee, burn, stake)
        uint256 fees;
        uint256 burned;
        uint256 premiums; // verified jobs' premiums, for the pool
    }

    /// @dev The wallet word of `who`, taken from the one a batch holds (`held`, `heldWord`) or
    /// read after writing the held one back.
    function _takeWallet(address who, address held, uint256 heldWord) internal returns (uint256) {
        if (who == held) return heldWord;
        if (held != address(0)) _wallets[held] = heldWord;
        return _wallets[who];
    }

    function _useProvider(Batch memory b, uint32 id) internal {
        if (b.providerId == id) return;
        if (b.providerId != 0) _balances[b.providerId] = b.provider;
        if (b.developerId == id) {
            b.provider = b.developer;
            b.developerId = 0;
        } else {
            b.provider = _balances[id];
        }
        b.providerId = id;
    }

    function _useDeveloper(Batch memory b, uint32 id) internal {
        if (b.developerId == id) return;
        if (b.developerId != 0) _balances[b.developerId] = b.developer;
        if (b.providerId == id) {
            b.developer = b.provider;
            b.providerId = 0;
        } else {
            b.developer = _balances[id];
        }
        b.developerId = id;
    }

    function _termsOf(Batch memory b, uint16 index) internal view returns (uint256) {
        if (b.termsKey != uint32(index) + 1) {
            b.termsKey = uint32(index) + 1;
            b.terms = _settlementWord(_terms[index]);
        }
        return b.terms;
    }

    /// @dev The settlement word (fee, burn share, minStake, stakeMultiple) of terms `index`:
    /// from the protocol word (which the settlement writes anyway) when they are the current
    /// terms.
    function _settlementTerms(Batch memory b, uint16 index) internal view returns (uint256) {
        if (b.cachedKey == 0) {
            uint256 p = _protocol;
            b.cachedKey = uint32(uint16(p >> P_TERMS)) + 1;
            b.cachedTerms = p >> P_FEE;
        }
        if (b.cachedKey == uint32(index) + 1) return b.cachedTerms;
        return _termsOf(b, index);
    }

    function _flush(Batch memory b) internal {
        if (b.providerId != 0) _balances[b.providerId] = b.provider;
        if (b.developerId != 0) _balances[b.developerId] = b.developer;
        if (b.fees > 0) _creditProtocol(b.fees - b.burned, b.burned);
        if (b.premiums > 0) _pool += b.premiums;
    }

    // ------------------------------------------------------------------ job lifecycle

    /// @notice The EIP-712 digest a developer signs for `order`.
    function orderDigest(Order calldata order) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    ORDER_TYPEHASH,
                    order.jobId,
                    order.specHash,
                    order.maxPayment,
                    order.deadline,
                    order.nonce
                )
            )
        );
    }

    /// @notice The EIP-712 digest a provider signs for its result.
    function resultDigest(bytes32 jobId, bytes32 resultHash, uint64 amount)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(RESULT_TYPEHASH, jobId, resultHash, amount)));
    }

    /// @notice Escrow a developer's signed order. The coordinator relays it, but can never
    /// move more than the developer signed for, nor reuse the signature for another job,
    /// contract or chain (the job id and the EIP-712 domain are signed).
    function openJob(Order calldata order, Sig calldata signature) external {
        _openOne(order, signature);
    }

    /// @notice `openJob` for a verified job (sampled, or redundant), which other providers
    /// re-run for the market:
    /// the same checks and event, and the job is marked verified, so that when it settles its
    /// developer pays the terms' premium (`premiumBps` of the amount, at most what the escrow
    /// holds beyond it) into the verification pool. The developer signs the same order: what
    /// it can lose is still bounded by its maxPayment.
    ///
    /// A redundant job, run `copies` more times by other providers, appends `copies` as one
    /// more word after the signature (not an ABI argument: a third argument would change how
    /// the shared code decodes `openJob`'s order and cost every plain job gas). The market
    /// keeps 3 bits of it (0 to 7; absent: 0), and the premium adds the whole amount once per
    /// copy: the pool pays the replicas.
    function openVerified(Order calldata order, Sig calldata signature) external {
        _openOne(order, signature);
    }

    /// @dev `openJob` and `openVerified`, one copy of the code for both: the verified flag is
    /// told by the selector, not passed as a literal (the optimizer would compile `_open` once
    /// more for it: bytes the contract lacks under the size limit, and gas on the plain open),
    /// and set on the word `_open` just wrote (warm).
    function _openOne(Order calldata order, Sig calldata signature) internal {
        (address developer, uint256 a) = _open(order, signature, _openingConfig(), address(0), 0);
        _wallets[developer] = a;
        if (msg.sig == this.openVerified.selector) {
            bytes32 slot = _jobSlot(order.jobId);
            uint256 copies;
            assembly ("memory-safe") {
                // the word after the selector, the order (5 words) and the sig (2); 0 if absent
                copies := calldataload(228)
            }
            _storeSlot(slot, _loadSlot(slot) | J_VERIFIED | ((copies & 7) << J_COPIES));
        }
    }

    /// @dev The config word, for a coordinator's open; reverts for anyone else and while
    /// paused (one read for the caller check, the pause flag and the current terms).
    function _openingConfig() internal view returns (uint256 c) {
        c = _config;
        _onlyCoordinator(c);
        if (c & C_PAUSED != 0) revert EnforcedPause();
    }

    /// @dev The coordinator role check: the primary coordinator (kept in the config word) needs
    /// no read of the role mapping.
    function _onlyCoordinator(uint256 c) internal view {
        if (
            msg.sender != address(uint160(c >> C_COORDINATOR))
                && !hasRole(COORDINATOR_ROLE, msg.sender)
        ) revert AccessControlUnauthorizedAccount(msg.sender, COORDINATOR_ROLE);
    }

    /// @notice Open many jobs in one transaction (all or none: any bad order reverts it).
    function openMany(Order[] calldata orders, Sig[] calldata signatures) external {
        uint256 c = _openingConfig();
        address held;
        uint256 heldWord;
        for (uint256 i = 0; i < orders.length; ++i) {
            (held, heldWord) = _open(orders[i], signatures[i], c, held, heldWord);
        }
        if (held != address(0)) _wallets[held] = heldWord;
    }

    /// @dev Opens one job and returns its developer's wallet word, to be written back by the
    /// caller (a batch holds it while the next order is the same developer's).
    function _open(
        Order calldata order,
        Sig calldata signature,
        uint256 c,
        address held,
        uint256 heldWord
    ) internal returns (address developer, uint256 a) {
        bytes32 jobId = order.jobId;
        bytes32 slot = _jobSlot(jobId);
        uint256 existing = _loadSlot(slot);
        if (existing != 0) revert WrongState(jobId, State(uint8(existing >> J_STATE)));
        if (block.timestamp > order.deadline) revert OrderExpired(order.deadline, block.timestamp);
        developer = ECDSA.recover(orderDigest(order), signature.r, signature.vs);
        a = _takeWallet(developer, held, heldWord);
        uint32 dev = uint32(a);
        if (dev == 0) revert BadSignature(developer);
        uint64 maxPayment = order.maxPayment;
        if (_get(a, A_DEPOSIT) < maxPayment) a = _foldRefunds(a);
        uint64 free = _get(a, A_DEPOSIT);
        if (free < maxPayment) revert InsufficientBalance(free, maxPayment);
        unchecked {
            a = _put(a, A_DEPOSIT, free - maxPayment); // free >= maxPayment
        }
        // a deadline past 2106 is kept as the largest the job's 32 bits hold, never truncated
        // (a truncated one would let anyone expire the job at once)
        uint256 deadline = order.deadline > U32 ? U32 : order.deadline;
        _storeSlot(slot, uint256(dev) | (uint256(maxPayment) << J_MAX)
            | (deadline << J_DEADLINE) | (((c >> C_TERMS) & U15) << J_TERMS)
            | (uint256(uint8(State.Open)) << J_STATE));
        emit JobOpened(jobId, order.specHash, maxPayment);
    }

    /// @notice Record the provider's signed result and start the challenge window; locks
    /// `max(minStake, amount * stakeMultiple)` of the provider's stake (the job's terms) until
    /// the job settles.
    function commitResult(
        bytes32 jobId,
        bytes32 resultHash,
        uint64 amount,
        Sig calldata providerSignature
    ) external {
        uint256 c = _config;
        _onlyCoordinator(c);
        (address provider, uint256 a) =
            _commit(jobId, resultHash, amount, providerSignature, c, address(0), 0);
        _wallets[provider] = a;
    }

    /// @notice Commit many results in one transaction (all or none).
    function commitMany(
        bytes32[] calldata jobIds,
        bytes32[] calldata resultHashes,
        uint64[] calldata amounts,
        Sig[] calldata providerSignatures
    ) external {
        uint256 c = _config;
        _onlyCoordinator(c);
        address held;
        uint256 heldWord;
        for (uint256 i = 0; i < jobIds.length; ++i) {
            (held, heldWord) = _commit(
                jobIds[i], resultHashes[i], amounts[i], providerSignatures[i], c, held, heldWord
            );
        }
        if (held != address(0)) _wallets[held] = heldWord;
    }

    function _commit(
        bytes32 jobId,
        bytes32 resultHash,
        uint64 amount,
        Sig calldata providerSignature,
        uint256 c,
        address held,
        uint256 heldWord
    ) internal returns (address provider, uint256 a) {
        bytes32 slot = _jobSlot(jobId);
        uint256 w = _loadSlot(slot);
        if (uint8(w >> J_STATE) != uint8(State.Open)) {
            revert WrongState(jobId, State(uint8(w >> J_STATE)));
        }
        uint64 maxPayment = uint64(w >> J_MAX);
        if (amount > maxPayment) revert AmountOverMax(amount, maxPayment);
        provider = ECDSA.recover(
            resultDigest(jobId, resultHash, amount), providerSignature.r, providerSignature.vs
        );
        a = _takeWallet(provider, held, heldWord);
        uint32 prov = uint32(a);
        if (prov == 0) revert BadSignature(provider);
        uint256 index = uint16(w >> J_TERMS);
        uint32 window;
        uint256 need;
        if (index == (c >> C_TERMS) & U15) {
            window = uint32(c >> C_WINDOW);
            need = _stakeToLock(amount, (c >> C_MIN_STAKE) & U40, uint8(c >> C_MULTIPLE));
        } else {
            uint256 t = _terms[index];
            window = uint32(t >> T_WINDOW);
            need = _stakeToLock(amount, uint64(t >> T_MIN_STAKE), uint8(t >> T_MULTIPLE));
        }
        uint256 staked = _get(a, A_STAKE);
        uint256 free;
        unchecked {
            free = staked - _get(a, A_LOCKED); // the locked stake never exceeds the stake
        }
        if (free < need) {
            a = _foldUnlocked(a);
            unchecked {
                free = staked - _get(a, A_LOCKED);
            }
            // a need over 64 bits is over any free stake: refused here, never truncated
            if (free < need) revert StakeTooLow(free, need);
        }
        unchecked {
            a += need << A_LOCKED; // locked + need <= staked: the field cannot carry over
        }
        uint32 windowEnd = uint32(block.timestamp) + window;
        // keeps the developer, maxPayment, terms and the verified flag (the extended flag is
        // clear: only a committed job is extended); the deadline becomes the window's end
        _storeSlot(
            slot,
            (w & (U32 | (U64 << J_MAX) | (U16 << J_TERMS) | J_VERIFY_BITS))
                | (uint256(prov) << J_PROVIDER)
                | (uint256(amount) << J_AMOUNT) | (uint256(windowEnd) << J_DEADLINE)
                | (uint256(uint8(State.Committed)) << J_STATE)
        );
        emit ResultCommitted(jobId, provider, resultHash, amount, windowEnd);
    }

    /// @notice Dispute a committed result, strictly before the window ends: the developer puts
    /// up the terms' bond; a verifier (whose re-runs, paid by the pool, found the fault) none.
    function challenge(bytes32 jobId) external nonReentrant {
        uint256 w = _jobs[jobId];
        State s = State(uint8(w >> J_STATE));
        if (s != State.Committed) revert WrongState(jobId, s);
        uint256 windowEnd = uint32(w >> J_DEADLINE);
        if (block.timestamp >= windowEnd) revert WindowClosed(windowEnd, block.timestamp);
        uint32 challenger;
        uint64 bond;
        if (!hasRole(VERIFIER_ROLE, msg.sender)) {
            if (accounts[uint32(w)] != msg.sender) revert NotDeveloperOrVerifier(msg.sender);
            challenger = uint32(w);
            bond = uint64(_terms[uint16(w >> J_TERMS)] >> T_BOND);
            if (bond > 0) token.safeTransferFrom(msg.sender, address(this), bond);
        }
        disputes[jobId] = Dispute({challenger: challenger, bond: bond});
        _setState(jobId, w, State.Disputed);
        emit Challenged(jobId, msg.sender, bond);
    }

    /// @notice A verifier re-running a sampled job gives itself (and the developer) more time to
    /// challenge: the window of a committed job, still open, ends `extra` seconds later, at
    /// most the job's terms' `verifyWindow`. Once per job.
    function extendWindow(bytes32 jobId, uint32 extra) external onlyRole(VERIFIER_ROLE) {
        bytes32 slot = _jobSlot(jobId);
        uint256 w = _loadSlot(slot);
        State s = State(uint8(w >> J_STATE));
        if (s != State.Committed) revert WrongState(jobId, s);
        uint256 windowEnd = uint32(w >> J_DEADLINE);
        if (block.timestamp >= windowEnd) revert WindowClosed(windowEnd, block.timestamp);
        if (w & J_EXTENDED != 0) revert AlreadyExtended(jobId);
        if (extra == 0) revert ZeroAmount();
        uint256 most = uint24(_terms[uint16(w >> J_TERMS)] >> T_VERIFY);
        if (extra > most) revert ExtensionTooLong(extra, most);
        windowEnd += extra;
        // an end past 2106 is kept as the largest the job's 32 bits hold, never truncated
        if (windowEnd > U32) windowEnd = U32;
        _storeSlot(slot, (w & ~(U32 << J_DEADLINE)) | (windowEnd << J_DEADLINE) | J_EXTENDED);
        emit WindowExtended(jobId, windowEnd);
    }

    /// @notice Pay a re-runner of a job from the verification pool: a verifier relays the claim
    /// the re-runner signed for the job (the EIP-712 `Result` a provider signs, for the same
    /// job id). The job must have had a result committed (Committed, Disputed, Settled or
    /// Refunded); the signer must be an account of the market, not the job's own provider, and
    /// is paid at most the job's maxPayment, once per job, into its earnings. The
    /// `RerunPaid` event is the on-chain evidence of the signed claim. The verifier can move
    /// only pool money, and only to an account that signed a claim for this job.
    function payRerun(bytes32 jobId, bytes32 resultHash, uint64 amount, Sig calldata signature)
        external
        onlyRole(VERIFIER_ROLE)
    {
        uint256 w = _jobs[jobId];
        State s = State(uint8(w >> J_STATE));
        unchecked {
            // Committed, Disputed, Settled or Refunded: a result was committed (2 to 5)
            if (uint8(s) - 2 > 3) revert WrongState(jobId, s);
        }
        uint64 maxPayment = uint64(w >> J_MAX);
        if (amount > maxPayment) revert AmountOverMax(amount, maxPayment);
        address runner =
            ECDSA.recover(resultDigest(jobId, resultHash, amount), signature.r, signature.vs);
        uint32 id = uint32(_wallets[runner]);
        if (id == 0) revert BadSignature(runner);
        if (id == uint32(w >> J_PROVIDER)) revert RunnerIsProvider(jobId, runner);
        bytes32 key = keccak256(abi.encode(jobId, id));
        if (_rerunPaid[key]) revert AlreadyPaid(jobId, runner);
        uint256 pool = _pool;
        if (pool < amount) revert InsufficientPool(pool, amount);
        _rerunPaid[key] = true;
        unchecked {
            _pool = pool - amount;
        }
        _credit(id, B_EARNINGS, amount);
        emit RerunPaid(jobId, runner, resultHash, amount);
    }

    /// @notice The arbiter's ruling. Provider at fault: its locked stake is slashed (a share to
    /// the challenger, or to the verification pool when a verifier challenged, the rest to the
    /// treasury), the developer gets the whole escrow back (a verified job's premium included:
    /// none is paid) and the challenger its bond. Otherwise the bond goes to the provider and
    /// the job settles (a verified job paying its premium).
    function resolve(bytes32 jobId, bool providerAtFault) external onlyRole(ARBITER_ROLE) {
        uint256 w = _jobs[jobId];
        State s = State(uint8(w >> J_STATE));
        if (s != State.Disputed) revert WrongState(jobId, s);
        Dispute memory d = disputes[jobId];
        delete disputes[jobId];
        if (providerAtFault) {
            uint256 t = _terms[uint16(w >> J_TERMS)];
            // what the commit locked (it fitted the provider's stake, so 64 bits)
            uint64 slashed = _lockedBy(w, _settlementWord(t));
            address provider = accounts[uint32(w >> J_PROVIDER)];
            uint256 a = _wallets[provider];
            a = _put(a, A_LOCKED, _get(a, A_LOCKED) - slashed);
            _wallets[provider] = _put(a, A_STAKE, _get(a, A_STAKE) - slashed);
            uint64 reward = uint64(uint256(slashed) * uint16(t >> T_SLASH) / BPS);
            if (d.challenger == 0) {
                // a verifier's challenge: the pool paid for the runs that proved the fault (and
                // the verifier put up no bond)
                _pool += reward;
            } else {
                _credit(d.challenger, B_EARNINGS, reward + d.bond);
            }
            _creditProtocol(slashed - reward, 0);
            uint64 maxPayment = uint64(w >> J_MAX);
            _credit(uint32(w), B_REFUNDS, maxPayment);
            _setState(jobId, w, State.Refunded);
            emit Resolved(jobId, true, slashed);
            emit Refunded(jobId, maxPayment);
        } else {
            if (d.bond > 0) _credit(uint32(w >> J_PROVIDER), B_EARNINGS, d.bond);
            emit Resolved(jobId, false, 0);
            Batch memory b;
            _settle(jobId, w, b);
            _flush(b);
        }
    }

    /// @notice Pay out a committed job once its window has passed (anyone may call).
    function finalize(bytes32 jobId) external {
        bytes32 slot = _jobSlot(jobId);
        uint256 w = _loadSlot(slot);
        if (uint8(w >> J_STATE) != uint8(State.Committed)) {
            revert WrongState(jobId, State(uint8(w >> J_STATE)));
        }
        uint32 windowEnd = uint32(w >> J_DEADLINE);
        if (block.timestamp < windowEnd) revert WindowOpen(windowEnd, block.timestamp);
        // `_settle` for one job, straight to storage: no batch to keep
        uint256 p = _protocol;
        uint256 index = uint16(w >> J_TERMS);
        uint256 t = index == uint16(p >> P_TERMS) ? p >> P_FEE : _settlementWord(_terms[index]);
        (uint64 amount, uint64 fee, uint64 burned, uint64 refund) = _split(w, t);
        if (w & J_VERIFIED != 0) {
            uint64 premium = _premium(w, amount, refund);
            unchecked {
                refund -= premium; // premium <= refund
            }
            _pool += premium;
            emit PremiumPaid(jobId, premium);
        }
        uint32 prov = uint32(w >> J_PROVIDER);
        uint256 pw = _balances[prov];
        pw = _put(pw, B_EARNINGS, _get(pw, B_EARNINGS) + (amount - fee));
        unchecked {
            pw += uint256(_lockedBy(w, t)) << B_UNLOCKED; // unlocked <= locked: no carry
        }
        if (refund > 0) {
            if (uint32(w) == prov) pw = _put(pw, B_REFUNDS, _get(pw, B_REFUNDS) + refund);
            else _credit(uint32(w), B_REFUNDS, refund);
        }
        _balances[prov] = pw;
        if (fee > 0) _protocol = _withShare(p, fee - burned, burned);
        _storeSlot(slot, (w & ~(uint256(0xff) << J_STATE)) | (uint256(uint8(State.Settled)) << J_STATE));
        emit Settled(jobId, amount - fee, fee, burned, refund);
    }

    /// @notice Finalize many jobs in one transaction; jobs not ready are skipped, not fatal.
    /// @return settled how many were paid out
    function finalizeMany(bytes32[] calldata jobIds) external returns (uint256 settled) {
        Batch memory b;
        for (uint256 i = 0; i < jobIds.length; ++i) {
            bytes32 jobId = jobIds[i];
            uint256 w = _jobs[jobId];
            if (
                uint8(w >> J_STATE) == uint8(State.Committed)
                    && block.timestamp >= uint32(w >> J_DEADLINE)
            ) {
                _settle(jobId, w, b);
                ++settled;
            }
        }
        _flush(b);
    }

    /// @dev Pays the provider, refunds the developer (less a verified job's premium, for the
    /// pool) and adds the protocol's share, all through the batch (the caller flushes it), and
    /// marks the job settled.
    function _settle(bytes32 jobId, uint256 w, Batch memory b) internal {
        uint256 t = _settlementTerms(b, uint16(w >> J_TERMS));
        (uint64 amount, uint64 fee, uint64 burned, uint64 refund) = _split(w, t);
        if (w & J_VERIFIED != 0) {
            uint64 premium = _premium(w, amount, refund);
            unchecked {
                refund -= premium; // premium <= refund
            }
            b.premiums += premium;
            emit PremiumPaid(jobId, premium);
        }
        _useProvider(b, uint32(w >> J_PROVIDER));
        uint256 p = b.provider;
        p = _put(p, B_EARNINGS, _get(p, B_EARNINGS) + (amount - fee));
        unchecked {
            b.provider = p + (uint256(_lockedBy(w, t)) << B_UNLOCKED); // unlocked <= locked
        }
        if (refund > 0) {
            _useDeveloper(b, uint32(w));
            b.developer = _put(b.developer, B_REFUNDS, _get(b.developer, B_REFUNDS) + refund);
        }
        b.fees += fee;
        b.burned += burned;
        _setState(jobId, w, State.Settled);
        emit Settled(jobId, amount - fee, fee, burned, refund);
    }

    /// @notice The coordinator cancels a job before any result: the escrow goes back.
    function cancel(bytes32 jobId) external onlyRole(COORDINATOR_ROLE) {
        _refundOpen(jobId, _openJobWord(jobId));
    }

    /// @notice Anyone may expire a job that got no result by its order's deadline.
    function expire(bytes32 jobId) external {
        uint256 w = _openJobWord(jobId);
        uint32 deadline = uint32(w >> J_DEADLINE);
        if (block.timestamp <= deadline) revert NotExpired(deadline, block.timestamp);
        _refundOpen(jobId, w);
    }

    /// @dev The job's word, which must be Open: a job with a result (or none at all) says so
    /// by its state, before any deadline is looked at.
    function _openJobWord(bytes32 jobId) internal view returns (uint256 w) {
        w = _jobs[jobId];
        State state = State(uint8(w >> J_STATE));
        if (state != State.Open) revert WrongState(jobId, state);
    }

    function _refundOpen(bytes32 jobId, uint256 w) internal {
        uint64 refund = uint64(w >> J_MAX);
        _credit(uint32(w), B_REFUNDS, refund);
        _setState(jobId, w, State.Cancelled);
        emit Cancelled(jobId, refund);
    }

    // ------------------------------------------------------------------ protocol

    /// @notice Change the terms for jobs opened from now on (fee capped at 10%).
    function setTerms(Terms calldata next) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTerms(next, false);
    }

    /// @dev The first terms (from the constructor) get index 0, each later one the next.
    /// The current terms' window, minStake and stakeMultiple are also kept in the config word
    /// (for commits), and their fee, burn share, minStake and stakeMultiple in the protocol word
    /// (for settlements), so a minStake must fit 40 bits (1.09 million at 6 decimals) and there
    /// are at most 32,768 terms. The terms word keeps verifyWindow in 24 bits (at most about 194
    /// days) and premiumBps in 16 (at most 100%).
    function _setTerms(Terms memory next, bool first) internal {
        uint256 c = _config;
        uint256 index = first ? 0 : ((c >> C_TERMS) & U15) + 1;
        if (
            next.feeBps > MAX_FEE_BPS || next.burnBps > BPS || next.slashShareBps > BPS
                || next.minStake > U40 || index > U15 || next.verifyWindow > U24
                || next.premiumBps > BPS
        ) revert BadTerms();
        _terms[index] = _packTerms(next);
        _config = (c & (C_PAUSED | (uint256(type(uint160).max) << C_COORDINATOR)))
            | (index << C_TERMS) | (uint256(next.window) << C_WINDOW)
            | (uint256(next.minStake) << C_MIN_STAKE)
            | (uint256(next.stakeMultiple) << C_MULTIPLE);
        _protocol = (_protocol & ((1 << P_TERMS) - 1)) | (index << P_TERMS)
            | (uint256(next.feeBps) << P_FEE) | (uint256(next.burnBps) << P_BURN_BPS)
            | (uint256(next.minStake) << P_MIN_STAKE)
            | (uint256(next.stakeMultiple) << P_MULTIPLE);
        emit TermsChanged(uint16(index), next);
    }

    function _currentTermsIndex() internal view returns (uint16) {
        return uint16((_config >> C_TERMS) & U15);
    }

    /// @dev Granting the coordinator role to the first coordinator (or the next, once the
    /// primary's role is revoked) makes it the primary one, kept in the config word.
    function _grantRole(bytes32 role, address account) internal override returns (bool granted) {
        granted = super._grantRole(role, account);
        uint256 c = _config;
        if (granted && role == COORDINATOR_ROLE && c >> C_COORDINATOR == 0) {
            _config = c | (uint256(uint160(account)) << C_COORDINATOR);
        }
    }

    function _revokeRole(bytes32 role, address account) internal override returns (bool revoked) {
        revoked = super._revokeRole(role, account);
        uint256 c = _config;
        if (revoked && role == COORDINATOR_ROLE && address(uint160(c >> C_COORDINATOR)) == account)
        {
            _config = c & ~(uint256(type(uint160).max) << C_COORDINATOR);
        }
    }

    /// @notice The terms new jobs get.
    function currentTerms() external view returns (Terms memory) {
        return _unpackTerms(_terms[_currentTermsIndex()]);
    }

    /// @notice Where `withdrawTreasury` sends the fees from now on.
    function setTreasury(address next) external onlyRole(DEFAULT_ADMIN_ROLE) {
        treasury = next;
        emit TreasuryChanged(next);
    }

    /// @notice How long unstaked tokens wait before they can be withdrawn (requests already
    /// made keep their time).
    function setUnstakeDelay(uint64 delay) external onlyRole(DEFAULT_ADMIN_ROLE) {
        unstakeDelay = delay;
        emit UnstakeDelayChanged(delay);
    }

    /// @notice Send the accumulated fees to the treasury address (works while paused).
    function withdrawTreasury() external nonReentrant {
        uint128 amount = treasuryBalance();
        if (amount == 0) revert ZeroAmount();
        _protocol &= ~U71;
        token.safeTransfer(treasury, amount);
        emit TreasuryWithdrawn(treasury, amount);
    }

    /// @notice Burn the accumulated burn share (sent to the dead address; anyone may call).
    function burn() external nonReentrant {
        uint128 amount = burnBalance();
        if (amount == 0) revert ZeroAmount();
        _protocol &= ~(U72 << P_BURN);
        token.safeTransfer(BURN_ADDRESS, amount);
        emit Burned(amount);
    }

    /// @notice Whether new jobs are refused (withdrawals always work).
    function paused() public view returns (bool) {
        return _config & C_PAUSED != 0;
    }

    /// @notice Stop new jobs; everything else, withdrawals included, goes on.
    function pause() external onlyRole(PAUSER_ROLE) {
        uint256 c = _config;
        if (c & C_PAUSED != 0) revert EnforcedPause();
        _config = c | C_PAUSED;
        emit Paused(msg.sender);
    }

    function unpause() external onlyRole(PAUSER_ROLE) {
        uint256 c = _config;
        if (c & C_PAUSED == 0) revert ExpectedPause();
        _config = c & ~C_PAUSED;
        emit Unpaused(msg.sender);
    }

    /// @notice How many accounts exist (account ids run from 1).
    function accountCount() external view returns (uint256) {
        return accounts.length - 1;
    }
}
